#!/usr/bin/env bash
# The system packages `make demo` and `make test` need, installed when missing.
#
#   scripts/system-deps.sh demo   what the demo runs (ffmpeg's libraries come with PyAV's wheels)
#   scripts/system-deps.sh test   what the suite talks to: ffprobe, coturn, GStreamer's RTSP
#                                 server, avahi, iproute2, D-Bus, Chromium; and it starts the
#                                 PostgreSQL and Redis servers of this machine when stopped
#
# As root it installs what is missing with apt-get; otherwise it prints the exact command
# to run and exits 1. Nothing is installed when everything is already there.
set -euo pipefail

what=${1:-test}
need=()
has() { command -v "$1" >/dev/null 2>&1; }

# Every run: a Python 3.11+ with venv (Debian splits venv and ensurepip out).
python=${PYTHON:-python3}
if ! "$python" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    need+=(python3 python3-venv)
fi

if [[ $what == test ]]; then
    # iotvideo[restream]: pip builds PyGObject against GObject introspection (and pycairo
    # against cairo).
    pkg-config --exists gobject-introspection-1.0 2>/dev/null || need+=(libgirepository1.0-dev)
    pkg-config --exists cairo 2>/dev/null || need+=(libcairo2-dev)
    has pkg-config || need+=(pkg-config)
    # Provisioning: network namespaces with veth pairs, LAN browsing with avahi on a
    # private D-Bus.
    has ip || need+=(iproute2)
    has dbus-daemon || need+=(dbus)
    has avahi-daemon || need+=(avahi-daemon)
    has avahi-browse || need+=(avahi-utils)
    # Live media and cloud storage: a TURN relay, ffprobe, an RTSP camera (GStreamer's
    # RTSP server through Debian's Python and its GObject bindings; x264 is in -ugly).
    has turnserver || need+=(coturn)
    has ffprobe || need+=(ffmpeg)
    /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null \
        || need+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp
                  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly)
    # Restream's RTSP server (GstRtspServer's typelib comes with the camera's packages
    # above); h264parse is in -bad. The tests' clients: gst-launch-1.0 with rtspsrc and
    # avdec_h264.
    gst-inspect-1.0 h264parse >/dev/null 2>&1 || need+=(gstreamer1.0-plugins-bad)
    has gst-launch-1.0 || need+=(gstreamer1.0-tools)
    gst-inspect-1.0 avdec_h264 >/dev/null 2>&1 || need+=(gstreamer1.0-libav)
    # The load balancer of deploy/haproxy.cfg, in front of several cloud instances.
    has haproxy || need+=(haproxy)
    # A browser as a WebRTC viewer (WHEP), driven by Playwright with executable_path.
    [[ -x /usr/bin/chromium ]] || need+=(chromium)
    # The database and bus the suite talks to (CI machines run both already).
    has pg_isready || need+=(postgresql-client)
    has redis-cli || need+=(redis-tools)
elif [[ $what != demo ]]; then
    echo "usage: $0 demo|test" >&2
    exit 2
fi

start_services() {
    # The suite's PostgreSQL (127.0.0.1:5432, database test) and Redis (127.0.0.1:6379).
    [[ $what == test && $(id -u) == 0 ]] || return 0
    if has pg_ctlcluster && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
    fi
    if has redis-server && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        mkdir -p /var/lib/redis /var/log/redis
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    fi
}

if ((${#need[@]} == 0)); then
    start_services
    exit 0
fi

# Packages can be missing from the lists only on a machine that never ran apt-get update.
cmd="apt-get install -y --no-install-recommends ${need[*]}"
if [[ $(id -u) != 0 ]]; then
    echo "iotvideo needs these system packages: ${need[*]}" >&2
    echo "Install them, then run make again:" >&2
    echo "    sudo apt-get update && sudo $cmd" >&2
    exit 1
fi
if ! has apt-get; then
    echo "iotvideo needs these Debian/Ubuntu packages, and this machine has no apt-get: ${need[*]}" >&2
    exit 1
fi
echo "Installing system packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
start_services
