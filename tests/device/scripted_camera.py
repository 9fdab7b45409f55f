"""An RTSP camera with scripted content, for the gateway's tests: GStreamer's RTSP server
streaming H.264 of pictures made here (appsrc).

Run with Debian's Python (``/usr/bin/python3``, which has GStreamer's bindings; no numpy
there, so pictures are built with bytes operations):

    scripted_camera.py PORT CHANNEL SCRIPT_JSON

SCRIPT_JSON: ``{"width": 320, "height": 240, "fps": 10, "noise": 5, "light": 40,
"period": 60, "boxes": [[enter, leave, lane], ...]}``: a textured still scene with sensor
noise (``noise``: its spread in grey levels) and a light that rises by ``light`` grey
levels over half a ``period`` (seconds) and falls back over the other half, a white box
crossing from left to right at height ``lane`` (0..1) between the UNIX times ``enter``
and ``leave``, and the channel's number burned in at the top left: CHANNEL white squares
on a black strip.
Prints ``ready`` once it listens on 127.0.0.1; ``/cam`` is the stream.
"""

import json
import random
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

port, channel, script = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
W, H, FPS = int(script.get("width", 320)), int(script.get("height", 240)), script.get("fps", 10)
NOISE, LIGHT, PERIOD = script.get("noise", 5), script.get("light", 40), script.get("period", 60)
BOXES, BOX = script.get("boxes", []), int(script.get("box", 36))
rng = random.Random(channel)
STARTED = time.time()


def _planes(count: int) -> list[bytes]:
    """Luma planes of the still scene, each with its own sensor noise."""
    coarse = [[rng.randint(50, 170) for _ in range(W // 16 + 1)] for _ in range(H // 16 + 1)]
    out = []
    for _ in range(count):
        plane = bytearray(W * H)
        for y in range(H):
            row = coarse[y // 16]
            for x in range(W):
                v = row[x // 16] + int(rng.gauss(0, NOISE))
                plane[y * W + x] = 0 if v < 0 else 255 if v > 255 else v
        out.append(bytes(plane))
    return out


PLANES = _planes(6)
TABLES = [bytes(min(255, v + k) for v in range(256)) for k in range(256)]
CHROMA = bytes([128]) * (W * H // 2)


def picture(number: int, now: float) -> bytes:
    phase = ((now - STARTED) % PERIOD) / PERIOD
    light = LIGHT * (2 * phase if phase < 0.5 else 2 - 2 * phase)  # up, then down: slowly
    plane = bytearray(PLANES[number % len(PLANES)].translate(TABLES[int(light)]))
    for enter, leave, lane in BOXES:
        if enter <= now < leave:
            x = int((now - enter) / (leave - enter) * (W - BOX))
            y = int(lane * (H - BOX))
            for row in range(y, y + BOX):
                plane[row * W + x : row * W + x + BOX] = b"\xfa" * BOX
    for row in range(20):  # the channel's number: squares on a black strip
        plane[row * W : row * W + 24 * 8] = b"\x00" * (24 * 8)
    for n in range(channel):
        for row in range(4, 16):
            plane[row * W + 4 + n * 24 : row * W + 16 + n * 24] = b"\xff" * 12
    return bytes(plane) + CHROMA


Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( appsrc name=src is-live=true format=time do-timestamp=true "
    f"caps=video/x-raw,format=I420,width={W},height={H},framerate={FPS}/1 ! "
    f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} ! "
    "video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
factory.set_shared(True)
feeding = {"count": 0}


def configured(_factory: object, media: object) -> None:
    source = media.get_element().get_by_name_recurse_up("src")  # type: ignore[attr-defined]

    def push() -> bool:
        data = picture(feeding["count"], time.time())
        feeding["count"] += 1
        return source.emit("push-buffer", Gst.Buffer.new_wrapped(data)) == Gst.FlowReturn.OK

    GLib.timeout_add(int(1000 / FPS), push)


factory.connect("media-configure", configured)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit("cannot listen")
print("ready", flush=True)
GLib.MainLoop().run()
