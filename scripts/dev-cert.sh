#!/usr/bin/env bash
# dev-cert: a throw-away certificate authority and a server certificate for
# the TLS compose variant (deploy/compose/tls.yml), made with openssl.
#
#   bash scripts/dev-cert.sh [-f] [DIR]        (DIR: deploy/tls)
#
# Writes, into DIR (git-ignored: deploy/tls/.gitignore ignores everything):
#   ca.pem    the development CA's certificate: give it to clients
#             (curl --cacert deploy/tls/ca.pem https://localhost:8443/...)
#   cert.pem  the gateways' certificate, signed by that CA, for localhost,
#             gateway, 127.0.0.1 and ::1 (plus $DEV_CERT_SANS,
#             e.g. DEV_CERT_SANS="DNS:api.test,IP:192.0.2.7")
#   key.pem   its private key (ECDSA P-256)
# The CA's private key is deleted once the certificate is signed: the CA
# can sign nothing else, so trusting ca.pem somewhere trusts this one
# certificate only.
#
# An existing certificate that is valid for 7 more days is kept (run with
# -f to make a new one). The gateways read the key as user 65532 through a
# read-only bind mount: as root the key is given to 65532 (mode 0600),
# otherwise it is made world-readable (0644), which is acceptable for a
# development key on a development host only. Never use these files in
# production and never commit them.

set -euo pipefail

force=0
if [ "${1:-}" = -f ]; then
	force=1
	shift
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-$ROOT/deploy/tls}
DAYS=${DEV_CERT_DAYS:-90}
SANS="DNS:localhost,DNS:gateway,IP:127.0.0.1,IP:::1${DEV_CERT_SANS:+,$DEV_CERT_SANS}"

command -v openssl >/dev/null || { echo "dev-cert: openssl is required (apt-get install openssl)" >&2; exit 2; }
mkdir -p "$DIR"

if [ "$force" = 0 ] && [ -s "$DIR/cert.pem" ] && [ -s "$DIR/key.pem" ] && [ -s "$DIR/ca.pem" ] &&
	openssl x509 -in "$DIR/cert.pem" -noout -checkend $((7 * 86400)) >/dev/null 2>&1 &&
	openssl verify -CAfile "$DIR/ca.pem" "$DIR/cert.pem" >/dev/null 2>&1; then
	echo "dev-cert: $DIR/cert.pem is valid until $(openssl x509 -in "$DIR/cert.pem" -noout -enddate | cut -d= -f2) (-f makes a new one)"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 077

# The CA: self-signed, may sign server certificates only (pathlen 0).
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$tmp/ca.key" -out "$tmp/ca.pem" -days "$DAYS" \
	-subj "/O=Rampart development/CN=Rampart dev CA $(date -u +%F) $(hostname -s 2>/dev/null || echo host)" \
	-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# The server certificate.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$tmp/key.pem" -out "$tmp/server.csr" -subj "/O=Rampart development/CN=localhost" 2>/dev/null
cat >"$tmp/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$SANS
EOF
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
	-days "$DAYS" -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/cert.pem" 2>/dev/null
openssl verify -CAfile "$tmp/ca.pem" "$tmp/cert.pem" >/dev/null

# Into place: each file written under a new name and renamed over the old
# one, so a gateway polling the files never reads half a file.
for f in ca.pem cert.pem key.pem; do
	cp "$tmp/$f" "$DIR/.$f.new"
done
chmod 0644 "$DIR/.ca.pem.new" "$DIR/.cert.pem.new"
if [ "$(id -u)" = 0 ]; then
	chown 65532:65532 "$DIR/.key.pem.new"
	chmod 0600 "$DIR/.key.pem.new"
	keymode="0600, owner 65532 (the gateway's user)"
else
	chmod 0644 "$DIR/.key.pem.new"
	keymode="0644 (readable by the gateway's user 65532: a development key only)"
fi
for f in ca.pem cert.pem key.pem; do
	mv -f "$DIR/.$f.new" "$DIR/$f"
done

echo "dev-cert: wrote $DIR/{ca.pem,cert.pem,key.pem}; the CA's key is deleted"
echo "  names:   $SANS"
echo "  valid:   $DAYS days, until $(openssl x509 -in "$DIR/cert.pem" -noout -enddate | cut -d= -f2)"
echo "  key:     $keymode"
echo "  clients: curl --cacert $DIR/ca.pem https://localhost:\${RAMPART_HTTPS_PORT:-8443}/api/endpoint"
