#!/usr/bin/env bash
# Apache Kafka in KRaft mode from its official Maven Central artifacts, on the
# machine's Java (17+), without Docker. The bridge's tests (e2e/bridge_test.go)
# start brokers with it; .ci/run fetches once.
#
#   scripts/kafka.sh fetch                    resolve kafka_2.13 and its runtime
#                                             dependencies into the cache (idempotent);
#                                             prints the directory of jars
#   scripts/kafka.sh start DIR PORT CTRLPORT  format a one-node KRaft cluster
#                                             (broker + controller) in DIR and run it
#                                             in the foreground on 127.0.0.1:PORT
set -euo pipefail
KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
CACHE=${STREAMGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamgate}
LIBS=$CACHE/kafka-$KAFKA_VERSION/libs

fetch() {
	if [ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] && [ -f "$LIBS/.complete" ]; then
		echo "$LIBS"
		return
	fi
	local work
	work=$(mktemp -d)
	cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.streamgate</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
  </dependencies>
</project>
POM
	mkdir -p "$LIBS"
	(cd "$work" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS") >&2
	rm -rf "$work"
	touch "$LIBS/.complete"
	echo "$LIBS"
}

start() {
	local dir=$1 port=$2 ctrl=$3
	mkdir -p "$dir/data"
	cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$ctrl
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctrl
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
	local cp="$LIBS/*"
	local jvm=(-Xms256m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -Dlog4j2.level=warn)
	if [ ! -f "$dir/data/meta.properties" ]; then
		java "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)" \
			-c "$dir/server.properties" >"$dir/format.log" 2>&1
	fi
	exec java "${jvm[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties"
}

case "${1:-}" in
fetch) fetch ;;
start)
	[ $# -eq 4 ] || { echo "usage: $0 start DIR PORT CTRLPORT" >&2; exit 2; }
	fetch >/dev/null
	start "$2" "$3" "$4"
	;;
*) echo "usage: $0 fetch | start DIR PORT CTRLPORT" >&2; exit 2 ;;
esac
