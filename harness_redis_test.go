package redisws

// Harness additions for Redis topologies: TLS certificates made by the test,
// Sentinel (sentinels, master, replica) and Redis Cluster, all real
// redis-server processes on free loopback ports.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

// writeTestCA writes a CA certificate into dir and returns its path.
func writeTestCA(t testing.TB, dir string) string {
	t.Helper()
	_, file := newCA(t, dir, "ca")
	return file
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

// ---------------------------------------------------------------------------
// Sentinel
// ---------------------------------------------------------------------------

type sentinelSetup struct {
	Master, Replica *redisServer
	Sentinels       []*redisServer
	MasterName      string
}

// Addrs returns the sentinels' addresses, space-separated for a Caddyfile.
func (s *sentinelSetup) Addrs() string {
	var a []string
	for _, r := range s.Sentinels {
		a = append(a, r.Addr)
	}
	return strings.Join(a, " ")
}

// startSentinels starts a master, a replica and three sentinels that
// monitor them (quorum 2; a master is down after 1s of silence), and waits
// until every sentinel knows the replica and the other sentinels.
func startSentinels(t testing.TB) *sentinelSetup {
	t.Helper()
	s := &sentinelSetup{MasterName: "mymaster"}
	s.Master = startRedis(t)
	s.Replica = startRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port))
	for range 3 {
		s.Sentinels = append(s.Sentinels, startSentinel(t, s.MasterName, s.Master.Port))
	}
	ctx := context.Background()
	for _, sn := range s.Sentinels {
		c := sn.Client(t)
		eventually(t, wait, func() bool {
			m, err := c.Do(ctx, "SENTINEL", "MASTER", s.MasterName).Result()
			if err != nil {
				return false
			}
			info := fmt.Sprint(m)
			return strings.Contains(info, "num-slaves:1") && strings.Contains(info, "num-other-sentinels:2")
		}, "sentinel %s does not see the replica and the other sentinels", sn.Addr)
	}
	return s
}

func startSentinel(t testing.TB, master string, masterPort int) *redisServer {
	t.Helper()
	port := freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
		"sentinel monitor %s 127.0.0.1 %d 2\n"+
		"sentinel down-after-milliseconds %s 1000\n"+
		"sentinel failover-timeout %s 10000\n"+
		"sentinel parallel-syncs %s 1\n", port, dir, master, masterPort, master, master, master)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &redisServer{
		Port: port,
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		args: []string{conf, "--sentinel"},
		dir:  dir,
		sink: &logSink{t: t, prefix: fmt.Sprintf("sentinel:%d", port)},
	}
	if err := r.start(); err != nil {
		t.Fatalf("starting sentinel: %v", err)
	}
	t.Cleanup(func() {
		if err := r.kill(); err != nil {
			t.Errorf("sentinel:%d cleanup: %v", r.Port, err)
		}
		r.sink.silence()
	})
	return r
}

// MasterAddr asks a sentinel for the current master's address.
func (s *sentinelSetup) MasterAddr(t testing.TB) string {
	t.Helper()
	addr, err := s.Sentinels[0].Client(t).Do(context.Background(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName).StringSlice()
	if err != nil || len(addr) != 2 {
		t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME: %v %v", addr, err)
	}
	return net.JoinHostPort(addr[0], addr[1])
}

// ---------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------

type clusterSetup struct {
	Nodes []*redisServer // the first ones were created masters, the rest replicas

	mu      sync.Mutex
	clients map[*redisServer]*redis.Client
}

// Seeds returns every node's address, space-separated for a Caddyfile.
func (c *clusterSetup) Seeds() string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.Addr)
	}
	return strings.Join(a, " ")
}

// startCluster starts masters+masters*replicas cluster-enabled servers,
// creates the cluster with redis-cli --cluster create, and waits until every
// node reports cluster_state:ok.
func startCluster(t testing.TB, masters, replicas int) *clusterSetup {
	t.Helper()
	c := new(clusterSetup)
	var addrs []string
	for range masters * (1 + replicas) {
		n := startRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0")
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(t)
	return c
}

// WaitOK waits until every running node says cluster_state:ok and they all
// agree on the owners of all slots, which are running nodes.
func (c *clusterSetup) WaitOK(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	eventually(t, 60*time.Second, func() bool {
		var owners string
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			info, err := c.client(t, n).ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			slots := c.slotOwners(t, n)
			if slots == "" || (owners != "" && slots != owners) {
				return false
			}
			owners = slots
		}
		return true
	}, "cluster not ok")
}

// slotOwners describes which address serves each slot range, as n sees it.
func (c *clusterSetup) slotOwners(t testing.TB, n *redisServer) string {
	t.Helper()
	slots, err := c.client(t, n).ClusterSlots(context.Background()).Result()
	if err != nil {
		return ""
	}
	total := 0
	var b strings.Builder
	for _, s := range slots {
		total += s.End - s.Start + 1
		fmt.Fprintf(&b, "%d-%d:%s ", s.Start, s.End, s.Nodes[0].Addr)
		for _, m := range c.Nodes {
			if m.Addr == s.Nodes[0].Addr && !m.Running() {
				return "" // a dead master still owns slots
			}
		}
	}
	if total != 16384 {
		return ""
	}
	return b.String()
}

// Owner returns the node that serves channel ch's slot now, as a running
// node sees it.
func (c *clusterSetup) Owner(t testing.TB, ch string) *redisServer {
	t.Helper()
	return c.owner(t, c.slotTable(t), ch)
}

// slotTable returns CLUSTER SLOTS as the first running node that answers
// sees it.
func (c *clusterSetup) slotTable(t testing.TB) []redis.ClusterSlot {
	t.Helper()
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		if slots, err := c.client(t, n).ClusterSlots(context.Background()).Result(); err == nil {
			return slots
		}
	}
	t.Fatal("no cluster node answers CLUSTER SLOTS")
	return nil
}

func (c *clusterSetup) owner(t testing.TB, slots []redis.ClusterSlot, ch string) *redisServer {
	t.Helper()
	slot := keySlot(ch)
	for _, s := range slots {
		if slot >= s.Start && slot <= s.End {
			for _, m := range c.Nodes {
				if m.Addr == s.Nodes[0].Addr {
					return m
				}
			}
		}
	}
	t.Fatalf("no owner found for %q (slot %d)", ch, slot)
	return nil
}

// client returns one assertion client per node for the cluster's life.
func (c *clusterSetup) client(t testing.TB, n *redisServer) *redis.Client {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.clients == nil {
		c.clients = make(map[*redisServer]*redis.Client)
	}
	if cl := c.clients[n]; cl != nil {
		return cl
	}
	cl := n.Client(t)
	c.clients[n] = cl
	return cl
}

// ChannelsPerShard returns names with the given prefix, perShard of them on
// each of the masters.
func (c *clusterSetup) ChannelsPerShard(t testing.TB, prefix string, masters, perShard int) []string {
	t.Helper()
	slots := c.slotTable(t)
	buckets := map[*redisServer]int{}
	var out []string
	for i := 0; len(out) < masters*perShard && i < 100000; i++ {
		ch := prefix + strconv.Itoa(i)
		o := c.owner(t, slots, ch)
		if buckets[o] < perShard {
			buckets[o]++
			out = append(out, ch)
		}
	}
	if len(out) != masters*perShard {
		t.Fatalf("could not spread %d channels over %d masters: %v", masters*perShard, masters, buckets)
	}
	return out
}

// SPublish sends SPUBLISH to the owner of ch and returns its receiver count.
func (c *clusterSetup) SPublish(t testing.TB, ch, msg string) int64 {
	t.Helper()
	n, err := c.client(t, c.Owner(t, ch)).SPublish(context.Background(), ch, msg).Result()
	if err != nil {
		t.Fatalf("SPUBLISH %s: %v", ch, err)
	}
	return n
}

// ShardNumSub returns the sharded subscribers of ch in its shard: PUBSUB
// SHARDNUMSUB summed over every running node (other shards have none). A
// replica serves SSUBSCRIBE for its master's slots, and an old master that
// is demoted keeps its subscribers, who still get the messages.
func (c *clusterSetup) ShardNumSub(t testing.TB, ch string) int64 {
	t.Helper()
	var total int64
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		m, err := c.client(t, n).PubSubShardNumSub(context.Background(), ch).Result()
		if err != nil {
			t.Fatalf("PUBSUB SHARDNUMSUB %s on %s: %v", ch, n.Addr, err)
		}
		total += m[ch]
	}
	return total
}

// ---------------------------------------------------------------------------
// a TCP relay that counts connections (to see a client retry)
// ---------------------------------------------------------------------------

type tcpRelay struct {
	Addr  string
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
	mu    sync.Mutex
	open  []net.Conn
}

// startRelay forwards every connection on a free loopback port to target.
func startRelay(t testing.TB, target string) *tcpRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &tcpRelay{Addr: ln.Addr().String(), ln: ln}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			r.conns.Add(1)
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			r.mu.Lock()
			r.open = append(r.open, in, out)
			r.mu.Unlock()
			r.wg.Add(2)
			go func() { defer r.wg.Done(); _, _ = io.Copy(out, in); _ = out.Close() }()
			go func() { defer r.wg.Done(); _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		r.mu.Lock()
		for _, c := range r.open {
			_ = c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

// Conns returns how many connections were accepted so far.
func (r *tcpRelay) Conns() int64 { return r.conns.Load() }
