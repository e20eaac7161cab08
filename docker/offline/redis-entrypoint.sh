# As the official image: a redis-server started without a configuration file listens on every
# interface of the container's network without protected mode (the network is the boundary).
if [ "$1" = "redis-server" ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
