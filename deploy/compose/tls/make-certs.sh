#!/bin/sh
# Certificates for the compose stack's TLS variant (compose.tls.yaml), made with openssl:
#   ca.crt / ca.key                 a throwaway CA
#   sidecar.crt / sidecar.key       the sidecar's OTLP listeners (sidecar, localhost, 127.0.0.1)
#   example-app.crt / .key          the example app's client certificate (mTLS)
# Written to the folder given (default: certs/ beside this script, ignored by git). For a
# laptop only: the keys are left readable by every user, because the containers run as
# users of their own. Run it again to start over with new ones.
set -eu
out="${1:-$(dirname "$0")/certs}"
mkdir -p "$out"
cd "$out"

openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout ca.key -out ca.crt \
  -subj "/CN=tracehouse compose CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" 2>/dev/null

# issue NAME EXTENDED_KEY_USAGE SUBJECT_ALT_NAMES
issue() {
  openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  cat > "$1.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$2
subjectAltName=$3
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EXT
  openssl x509 -req -sha256 -days 825 -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out "$1.crt" -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

issue sidecar serverAuth "DNS:sidecar,DNS:localhost,IP:127.0.0.1"
issue example-app clientAuth "DNS:example-app"
rm -f ca.srl
chmod 644 ./*.crt ./*.key
echo "certificates in $out: ca.crt, sidecar.crt/.key, example-app.crt/.key"
