package testcerts

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// ServedSerial is the serial of the certificate a new NATS connection to addr
// gets after the server's INFO, nil when the TLS handshake fails. Reading
// INFO or dialling failing is a test error.
func ServedSerial(t T, addr string, pool *x509.CertPool) *big.Int {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal("dial ", addr, ": ", err)
	}
	defer func() { _ = nc.Close() }() // read only; nothing a close could lose
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(nc).ReadString('\n'); err != nil || !strings.HasPrefix(line, "INFO ") {
		t.Fatal(fmt.Sprintf("INFO: %q %v", line, err))
	}
	tc := tls.Client(nc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if tc.Handshake() != nil {
		return nil
	}
	return tc.ConnectionState().PeerCertificates[0].SerialNumber
}
