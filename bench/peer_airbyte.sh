#!/usr/bin/env bash
# Airbyte's WooCommerce source (0.4.12, from PyPI) reading the store that `sync_bench` syncs, on this
# machine, so that growthflow's figures can be held against the peer's from the same hour.
#
#   bench/peer_airbyte.sh [ORDERS] [HOST_LATENCY]      # defaults: 100000, none
#   bench/peer_airbyte.sh 20000 200,3,8                # the slow host of the README
#
# It installs the source into a virtualenv under target/peer-airbyte (nothing is committed), serves
# the store with `sync_bench --serve --behind-tls` (WooCommerce takes HTTP Basic on an HTTPS site,
# which is all the source sends), changes the scheme of the source's URL template from https to
# http (the sandbox speaks plain HTTP), reads the `orders` stream to /dev/null and prints the
# orders per second and the peak RSS. docs/performance.md, "The peer on the same machine", explains
# the method and what it favours.
set -euo pipefail

orders="${1:-100000}"
latency="${2:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$root/target/peer-airbyte"
venv="$work/venv"
mkdir -p "$work"

if [ ! -x "$venv/bin/source-woocommerce" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q airbyte-source-woocommerce==0.4.12
fi
manifest="$(ls "$venv"/lib/python3*/site-packages/source_woocommerce/manifest.yaml)"
sed -i 's#url_base: "https://#url_base: "http://#' "$manifest"

bench="$root/target/release/sync_bench"
[ -x "$bench" ] || cargo build --release -p growthflow-bench --manifest-path "$root/Cargo.toml"

# The server serves until its standard input closes: hold it open with a FIFO.
fifo="$work/hold"
rm -f "$fifo" && mkfifo "$fifo"
sleep 100000 > "$fifo" &
holder=$!
rm -f "$work/store.json"
serve_args=(--serve --behind-tls --orders "$orders")
[ -n "$latency" ] && serve_args+=(--host-latency "$latency")
"$bench" "${serve_args[@]}" < "$fifo" > "$work/store.json" &
server=$!
trap 'kill "$holder" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$fifo"' EXIT
# Generating a large store takes a while; the first line is whole once it ends with a newline.
until [ "$(head -n 1 "$work/store.json" 2>/dev/null | wc -l)" = 1 ]; do
  kill -0 "$server" 2>/dev/null || { echo "the sandbox did not start" >&2; exit 1; }
  sleep 0.5
done

python3 - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
store = json.loads(open(f"{work}/store.json").readline())
config = {
    "api_key": store["consumer_key"],
    "api_secret": store["consumer_secret"],
    "shop": store["url"].removeprefix("http://"),
    "start_date": "2024-01-01",
}
json.dump(config, open(f"{work}/config.json", "w"))
EOF
"$venv/bin/source-woocommerce" discover --config "$work/config.json" > "$work/discover.jsonl"
python3 - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
for line in open(f"{work}/discover.jsonl"):
    message = json.loads(line)
    if message.get("type") == "CATALOG":
        stream = next(s for s in message["catalog"]["streams"] if s["name"] == "orders")
        catalog = {"streams": [{
            "stream": stream,
            "sync_mode": "incremental",
            "cursor_field": stream["default_cursor_field"],
            "destination_sync_mode": "append",
        }]}
        json.dump(catalog, open(f"{work}/orders.json", "w"))
EOF

/usr/bin/time -f "%e %M" -o "$work/time.txt" \
  "$venv/bin/source-woocommerce" read --config "$work/config.json" --catalog "$work/orders.json" \
  | grep -c '^{"type":"RECORD"' > "$work/records.txt" || true
read -r seconds kib < "$work/time.txt"
records="$(cat "$work/records.txt")"
python3 -c "
s, kib, n = float('$seconds'), int('$kib'), int('$records')
print(f'airbyte source-woocommerce 0.4.12: {n} orders in {s:.2f} s, {n / s:,.0f} orders/s, peak RSS {kib / 1024:.1f} MiB')
"
if [ "$records" != "$orders" ]; then
  echo "warning: the source printed $records orders, the store has $orders" >&2
fi
