"""Our Modbus client: a reply is accepted only when it answers the request outstanding.

One module per layer: `pdu` (read requests, the strict check of a reply PDU), `framing` (MBAP
and RTU frames cut exactly by length; pure), `connection` (an asyncio protocol with its own
buffer; which frame answers which request), `turns` and `gateway` (one connection per endpoint,
shared by its unit ids or not: transaction ids, pacing, resets, back-off), `poller` (a device's
read plan into a frame's blocks). `errors` names each way a request can fail (= block status).
"""

from .gateway import Gateway, Pacing
from .poller import DevicePoller, now_us

__all__ = ["DevicePoller", "Gateway", "Pacing", "now_us"]
