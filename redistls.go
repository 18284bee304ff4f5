package redisws

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// RedisTLS configures TLS towards Redis (and the sentinels).
type RedisTLS struct {
	// PEM file of the CA(s) that signed the server certificates. Default:
	// the system's roots.
	CA string `json:"ca,omitempty"`
	// PEM files of a client certificate and its key, for servers that
	// require one (tls-auth-clients).
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	// Name to verify in the server certificate. Default: the host of the
	// address dialled.
	ServerName string `json:"server_name,omitempty"`
}

// load reads the files named in t.
func (t *RedisTLS) load() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("reading ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no PEM certificate in ca file %s", t.CA)
		}
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate %s and key %s: %w", t.Cert, t.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
