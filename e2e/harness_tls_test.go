package e2e

// TLS certificates made by the test: a CA, a server and a client
// certificate signed by it, an unrelated CA; and a redis-server that speaks
// TLS with them.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-redis-ws/caddy-redis-ws/internal/testkit"
)

// testPKI holds PEM files: a CA, a server certificate for 127.0.0.1 and
// localhost signed by it, a client certificate, and an unrelated CA.
type testPKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey, OtherCA string
}

type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial atomic.Int64

// issue makes a certificate signed by parent (self-signed when parent is
// nil) and writes it and its key as PEM files dir/name.pem, dir/name-key.pem.
func issue(t testing.TB, dir, name string, parent *testCert, tmpl *x509.Certificate) (*testCert, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	tmpl.Subject = pkix.Name{CommonName: name}
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	write := func(file, typ string, der []byte) {
		if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(certFile, "CERTIFICATE", der)
	write(keyFile, "EC PRIVATE KEY", keyDER)
	return &testCert{cert: cert, key: key}, certFile, keyFile
}

func newCA(t testing.TB, dir, name string) (*testCert, string) {
	t.Helper()
	ca, file, _ := issue(t, dir, name, nil, &x509.Certificate{
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	})
	return ca, file
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := new(testPKI)
	var ca *testCert
	ca, p.CA = newCA(t, dir, "ca")
	_, p.OtherCA = newCA(t, dir, "other-ca")
	_, p.ServerCert, p.ServerKey = issue(t, dir, "server", ca, &x509.Certificate{
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	})
	_, p.ClientCert, p.ClientKey = issue(t, dir, "client", ca, &x509.Certificate{
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return p
}

// startRedisTLS starts a redis-server that speaks TLS on TLSPort (and plain
// TCP on Port, for the harness and the assertions). A client certificate is
// verified when one is presented.
func startRedisTLS(t testing.TB, p *testPKI) (r *redisServer, tlsPort int) {
	t.Helper()
	tlsPort = freePort(t)
	r = startRedis(t, "--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", p.ServerCert, "--tls-key-file", p.ServerKey,
		"--tls-ca-cert-file", p.CA, "--tls-auth-clients", "optional")
	return r, tlsPort
}

// tlsInternalNode starts a node that serves redis_ws /ws chat, with
// directives added to it, over HTTPS on localhost with Caddy's internal CA
// (tls internal); internalRoots gives the roots to trust.
func tlsInternalNode(t testing.TB, rs *redisServer, directives string) *caddyNode {
	t.Helper()
	return startNode(t, "node", `{
	admin 127.0.0.1:{$ADMIN_PORT}
	skip_install_trust
}

https://localhost:{$PORT} {
	tls internal
	redis_ws /ws chat {
		redis redis://127.0.0.1:{$REDIS_PORT}
		`+directives+`
	}
}
`, map[string]string{"REDIS_PORT": strconv.Itoa(rs.Port)})
}

// internalRoots waits for the root of the node's internal CA (tls internal)
// and returns it as the roots a client trusts.
func internalRoots(t testing.TB, n *caddyNode) *x509.CertPool {
	t.Helper()
	rootFile := filepath.Join(n.dir, "data", "caddy", "pki", "authorities", "local", "root.crt")
	var pem []byte
	testkit.Eventually(t, wait, func() bool { pem, _ = os.ReadFile(rootFile); return len(pem) > 0 }, "no internal CA root at %s", rootFile)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: not a PEM certificate", rootFile)
	}
	return roots
}
