#!/usr/bin/env bash
# The management centre on the demo: a local mosquitto, `detector centre configs/centre-demo.yaml`
# (SQLite), a dispatcher and an officer, then `detector replay` of the demo publishing its alert.
# Open the printed address and log in: the van's illegal_parking alert is a NEW case. Ctrl-C stops.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEMO_MQTT_PORT=${DEMO_MQTT_PORT:-18830} DEMO_WEB_PORT=${DEMO_WEB_PORT:-8080}
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
    systemctl disable --now mosquitto >/dev/null 2>&1 || service mosquitto stop >/dev/null 2>&1 || true
  else
    echo "scripts/centre_demo.sh: please install mosquitto (sudo apt-get install mosquitto)" >&2; exit 1
  fi
fi
DETECTOR_EXTRAS=centre scripts/setup.sh
export CENTRE_DEMO_DIR=${CENTRE_DEMO_DIR:-out/centre-demo}
demo=$CENTRE_DEMO_DIR
mkdir -p "$demo/broker"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n' \
  "$DEMO_MQTT_PORT" "$(realpath "$demo/broker")" > "$demo/broker/mosquitto.conf"
[ "$(id -u)" = 0 ] && echo "user root" >> "$demo/broker/mosquitto.conf"
"$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$demo/broker/mosquitto.conf" >"$demo/broker/log" 2>&1 &
broker=$!
trap 'kill $broker ${centre:-} 2>/dev/null; wait 2>/dev/null' EXIT
# the demo's accounts: passwords made here, printed once
password=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')
PW=$password .venv/bin/detector centre-user configs/centre-demo.yaml dispatcher --role dispatcher --password-env PW
PW=$password .venv/bin/detector centre-user configs/centre-demo.yaml officer --role officer --unit "demo unit" --password-env PW
.venv/bin/detector centre configs/centre-demo.yaml & centre=$!
# the demo's edge config, publishing to this broker with snapshots
.venv/bin/python - "$demo/demo-edge.yaml" <<'PY'
import os, sys, yaml
config = yaml.safe_load(open("configs/demo.yaml"))
config["mqtt"] = {"host": "127.0.0.1", "port": int(os.environ["DEMO_MQTT_PORT"]), "snapshots": True}
config["storage_dir"] = os.environ["CENTRE_DEMO_DIR"] + "/edge"
yaml.safe_dump(config, open(sys.argv[1], "w"))
PY
for _ in $(seq 120); do (exec 3<>"/dev/tcp/127.0.0.1/$DEMO_WEB_PORT") 2>/dev/null && break; sleep 0.5; done  # the centre is up
.venv/bin/detector replay "$demo/demo-edge.yaml" --camera vtest --out "$demo/replay" --no-progress
echo
echo "Open http://127.0.0.1:$DEMO_WEB_PORT/ and log in as 'dispatcher' (or 'officer' on a phone) with the password: $password"
echo "Ctrl-C stops the centre and the broker."
wait $centre
