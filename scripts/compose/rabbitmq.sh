#!/bin/sh
# Entrypoint of the RabbitMQ nodes of the compose profile `cluster`: writes the Erlang cookie the
# nodes share (RABBITMQ_CLUSTER_COOKIE, from .env) where RabbitMQ reads it, then starts the node as
# the image does (its entrypoint hands the files to the rabbitmq user).
set -eu
: "${RABBITMQ_CLUSTER_COOKIE:?set RABBITMQ_CLUSTER_COOKIE in .env (node scripts/compose/env.mjs writes one)}"
: "${RABBITMQ_DEFAULT_PASS:?set RABBITMQ_ADMIN_PASSWORD in .env}"
umask 077
printf '%s' "$RABBITMQ_CLUSTER_COOKIE" > /var/lib/rabbitmq/.erlang.cookie
chmod 400 /var/lib/rabbitmq/.erlang.cookie
exec docker-entrypoint.sh rabbitmq-server
