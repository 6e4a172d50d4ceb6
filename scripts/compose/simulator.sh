#!/bin/bash
# The compose profile `sim`: a simulated city against the service next door. Creates an integrator
# token in the shared registry (first run only), generates and imports the city through the API,
# then runs it: the last SIM_BACKFILL hours at 60x, then on in real time.
set -euo pipefail
city=/data/sim-city
api="http://${SIM_SERVICE_HOST:-service}:8080"
token_file=/data/sim-city.token
mkdir -p "$city"
until node -e "fetch('$api/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; do
  echo "waiting for the service at $api ..."
  sleep 2
done
if [ ! -s "$token_file" ]; then
  node --import tsx services/cli.ts token create --role integrator --name simulator --json | node -e "let s='';process.stdin.on('data',(d)=>s+=d).on('end',()=>process.stdout.write(JSON.parse(s).token))" > "$token_file"
fi
node --import tsx device-sim/sim.ts city --seed "${SIM_SEED:-11}" --trucks "${SIM_TRUCKS:-50}" --collection-trucks "${SIM_COLLECTION_TRUCKS:-12}" --bins "${SIM_BINS:-400}" \
  --out "$city" --api "$api" --token "$(cat "$token_file")"
exec node --import tsx device-sim/sim.ts run --city "$city" --url "mqtt://${SIM_SERVICE_HOST:-service}:1883" \
  --speed 60 --start="-${SIM_BACKFILL:-6}h" --duration 30d --violations "${SIM_VIOLATIONS:-all=0.05}" --progress-every 30
