package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// checkTLSFlags refuses a TCP listener without TLS, and TLS flags without
// a listener (they would silently do nothing).
func checkTLSFlags(o options) error {
	if o.listen == "" {
		for _, f := range []struct{ name, v string }{{"--tls-cert", o.tlsCert}, {"--tls-key", o.tlsKey}, {"--tls-client-ca", o.tlsClientCA}} {
			if f.v != "" {
				return fmt.Errorf("%s is only used with --listen", f.name)
			}
		}
		return nil
	}
	if o.tlsCert == "" || o.tlsKey == "" {
		return errors.New("--listen needs --tls-cert and --tls-key: labd serves TCP only with TLS")
	}
	return nil
}

// loadTLS builds the TCP listener's TLS configuration from the flags; nil
// when there is no --listen. TLS 1.2 is the oldest accepted; with
// --tls-client-ca every client must present a certificate it signed.
func loadTLS(o options) (*tls.Config, error) {
	if o.listen == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s / --tls-key %s: %w", o.tlsCert, o.tlsKey, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if o.tlsClientCA != "" {
		pem, err := os.ReadFile(o.tlsClientCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-client-ca %s: no PEM certificate in it", o.tlsClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
