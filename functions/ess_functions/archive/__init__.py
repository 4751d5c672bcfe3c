"""The raw archive: layout (Avro objects of every Pub/Sub message, in a Cloud Storage
subscription's layout), redecode (archived frames replayed into a database), cli
(`ess redecode`)."""
