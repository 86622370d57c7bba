// Package e2e holds the multi-replica end-to-end suite: a real redis-server,
// three gateway processes, HAProxy (configured from deploy/haproxy/haproxy.cfg)
// and the demo upstream, all on loopback, driven by clients with many
// distinct source addresses in 127.0.0.0/8. It needs no Docker.
//
// The tests carry the build tag e2e:
//
//	make e2e   # go test -tags e2e -count=1 -timeout 20m -v ./e2e/
//
// They need redis-server, redis-cli and haproxy on PATH (Debian:
// apt-get install redis-server redis-tools haproxy).
package e2e
