package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deepmeter/deepmeter/internal/standin"
	"github.com/deepmeter/deepmeter/internal/testlog"
)

// TestServeTLSHTTP2 starts `deepmeter serve` with certificates for both
// listeners and streams a call through the proxy with an HTTP/2 client
// that trusts only the test certificate: the client gets HTTP/2 and the
// stand-in's bytes, and the admin API responds over HTTPS.
func TestServeTLSHTTP2(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := writeTestCert(t, dir)
	upstream := httptest.NewServer(standin.New(standin.Options{}))
	defer upstream.Close()
	listen, adminListen := freeAddr(t), freeAddr(t)

	ctx, cancel := context.WithCancel(context.Background())
	var logs testlog.Buffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"serve",
			"--listen", listen, "--admin-listen", adminListen,
			"--upstream", upstream.URL, "--database-url", "sqlite:" + filepath.Join(dir, "d.db"),
			"--tls-cert", certFile, "--tls-key", keyFile,
			"--admin-tls-cert", certFile, "--admin-tls-key", keyFile,
			"--upstream-idle-timeout", "30s", "--on-client-abort", "drain",
		}, envOf(nil), io.Discard, &logs)
	}()
	defer func() {
		cancel()
		select {
		case code := <-exit:
			if code != 0 {
				t.Errorf("serve exit code %d: %s", code, logs.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop")
		}
	}()

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:    &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2:  true,
		DisableCompression: true,
	}}
	const body = `{"model":"deepseek-chat","stream":true,"messages":[{"role":"user","content":"Say hello"}]}`
	post := func(base string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodPost, base+"/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk-tls00000000000000000000")
		req.Header.Set("Content-Type", "application/json")
		c := client
		if !strings.HasPrefix(base, "https") {
			c = http.DefaultClient
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}

	var resp *http.Response
	var got []byte
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, got, err = post("https://" + listen)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("call through the TLS proxy: %v\nlogs: %s", err, logs.String())
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	_, want, err := post(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stream through the proxy differs from the direct one:\n got %q\nwant %q", got, want)
	}

	health, err := client.Get("https://" + adminListen + "/healthz")
	if err != nil {
		t.Fatalf("admin over HTTPS: %v", err)
	}
	health.Body.Close()
	if health.StatusCode != http.StatusOK {
		t.Errorf("admin /healthz status %d, want 200", health.StatusCode)
	}
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its
// key as PEM files and returns their paths and a pool that trusts it.
func writeTestCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "deepmeter test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := writeFile(certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
