// Command ess-pstest serves Google's Go Pub/Sub fake (cloud.google.com/go/pubsub/pstest) on a
// fixed address: the fallback of the local stack when the official emulator is not installed.
// pstest has no push delivery, so a loop here delivers push subscriptions over HTTP (JSON
// envelope as Pub/Sub sends it), nacks failures with the retry policy's minimum backoff and
// moves a message to the dead-letter topic after max_delivery_attempts.
// Built by infra/local/install.sh from Debian's golang-google-cloud-dev (GOPATH mode).
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"cloud.google.com/go/pubsub/pstest"
	pb "google.golang.org/genproto/googleapis/pubsub/v1"
	"google.golang.org/grpc"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8085", "address to serve gRPC on")
	flag.Parse()

	fake := pstest.NewServer()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen %s: %v", *addr, err)
	}
	gs := grpc.NewServer()
	pb.RegisterPublisherServer(gs, &fake.GServer)
	pb.RegisterSubscriberServer(gs, &fake.GServer)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		gs.Stop()
		fake.Close()
		os.Exit(0)
	}()
	go pushLoop(&fake.GServer)
	log.Printf("ess-pstest: Pub/Sub fake listening on %s", lis.Addr())
	if err := gs.Serve(lis); err != nil {
		log.Fatal(err)
	}
}

type pushMessage struct {
	Data        string            `json:"data"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	MessageID   string            `json:"messageId"`
	MessageID2  string            `json:"message_id"`
	PublishTime string            `json:"publishTime"`
}

type pushEnvelope struct {
	Message         pushMessage `json:"message"`
	Subscription    string      `json:"subscription"`
	DeliveryAttempt int         `json:"deliveryAttempt,omitempty"`
}

func pushLoop(g *pstest.GServer) {
	ctx := context.Background()
	client := &http.Client{Timeout: 60 * time.Second}
	attempts := map[string]int{}
	for {
		time.Sleep(100 * time.Millisecond)
		subs, err := g.ListSubscriptions(ctx, &pb.ListSubscriptionsRequest{Project: "projects/", PageSize: 1000})
		if err != nil {
			continue
		}
		for _, sub := range subs.Subscriptions {
			endpoint := sub.GetPushConfig().GetPushEndpoint()
			if endpoint == "" {
				continue
			}
			resp, err := g.Pull(ctx, &pb.PullRequest{Subscription: sub.Name, MaxMessages: 10, ReturnImmediately: true})
			if err != nil {
				continue
			}
			for _, rm := range resp.ReceivedMessages {
				key := sub.Name + "/" + rm.Message.MessageId
				attempts[key]++
				n := attempts[key]
				if deliver(client, endpoint, sub, rm.Message, n) {
					ack(ctx, g, sub.Name, rm.AckId)
					delete(attempts, key)
					continue
				}
				dl := sub.GetDeadLetterPolicy()
				if dl != nil && dl.DeadLetterTopic != "" && n >= maxAttempts(dl) {
					deadLetter(ctx, g, sub, rm.Message, n)
					ack(ctx, g, sub.Name, rm.AckId)
					delete(attempts, key)
					continue
				}
				backoff := int32(1)
				if rp := sub.GetRetryPolicy(); rp != nil && rp.MinimumBackoff != nil && rp.MinimumBackoff.Seconds > 0 {
					backoff = int32(rp.MinimumBackoff.Seconds)
				}
				_, _ = g.ModifyAckDeadline(ctx, &pb.ModifyAckDeadlineRequest{
					Subscription: sub.Name, AckIds: []string{rm.AckId}, AckDeadlineSeconds: backoff,
				})
			}
		}
	}
}

func maxAttempts(dl *pb.DeadLetterPolicy) int {
	if dl.MaxDeliveryAttempts <= 0 {
		return 5
	}
	return int(dl.MaxDeliveryAttempts)
}

func ack(ctx context.Context, g *pstest.GServer, sub, ackID string) {
	_, _ = g.Acknowledge(ctx, &pb.AcknowledgeRequest{Subscription: sub, AckIds: []string{ackID}})
}

func deliver(client *http.Client, endpoint string, sub *pb.Subscription, m *pb.PubsubMessage, n int) bool {
	pt := ""
	if m.PublishTime != nil {
		pt = time.Unix(m.PublishTime.Seconds, int64(m.PublishTime.Nanos)).UTC().Format(time.RFC3339Nano)
	}
	env := pushEnvelope{
		Message: pushMessage{
			Data: base64.StdEncoding.EncodeToString(m.Data), Attributes: m.Attributes,
			MessageID: m.MessageId, MessageID2: m.MessageId, PublishTime: pt,
		},
		Subscription: sub.Name,
	}
	if sub.GetDeadLetterPolicy() != nil {
		env.DeliveryAttempt = n
	}
	body, _ := json.Marshal(env)
	resp, err := client.Post(endpoint, "application/json", bytes.NewReader(body))
	if err != nil {
		log.Printf("push to %s: %v", endpoint, err)
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

func deadLetter(ctx context.Context, g *pstest.GServer, sub *pb.Subscription, m *pb.PubsubMessage, n int) {
	attrs := map[string]string{}
	for k, v := range m.Attributes {
		attrs[k] = v
	}
	attrs["CloudPubSubDeadLetterSourceSubscription"] = sub.Name
	attrs["CloudPubSubDeadLetterSourceDeliveryCount"] = strconv.Itoa(n)
	_, err := g.Publish(ctx, &pb.PublishRequest{
		Topic:    sub.GetDeadLetterPolicy().DeadLetterTopic,
		Messages: []*pb.PubsubMessage{{Data: m.Data, Attributes: attrs}},
	})
	if err != nil {
		log.Printf("dead-letter from %s: %v", sub.Name, err)
	}
}
