package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/goplt/goplt/internal/brokeracl"
	"github.com/goplt/goplt/internal/kafkabroker"
)

// standInForStrimzi gives the cluster what a Strimzi Kafka cluster named goplt would: a TLS
// listener with SCRAM-SHA-512 behind the goplt-kafka-bootstrap Service (port 9093), its
// cluster CA in the goplt-cluster-ca-cert Secret, each KafkaUser's password in a Secret named
// after the user (the user operator's work), and the users' ACLs and the topics (the topic
// operator's). The broker is the local one (kfake) listening on the node's address.
func standInForStrimzi(ctx context.Context, t *testing.T, cp *ControlPlane, root string) {
	t.Helper()
	caPEM, serverCert, err := brokerTLS("goplt-kafka-bootstrap.goplt.svc", "goplt-kafka-bootstrap.goplt.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", NodeIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	admin := kafkabroker.Credentials{User: "goplt-admin", Password: randomHex(t)}
	bctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- kafkabroker.RunOn(bctx, kafkabroker.Listener{Host: NodeIP, TLS: &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}},
			t.TempDir(), []int{port}, admin, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() { stop(); <-done })

	set, err := brokeracl.Load(filepath.Join(root, "deploy/local/broker-acls.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	passwords := map[string]string{}
	secrets := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: goplt-cluster-ca-cert, namespace: goplt, labels: {strimzi.io/cluster: goplt}}
stringData: {ca.crt: %q}
---
apiVersion: v1
kind: Service
metadata: {name: goplt-kafka-bootstrap, namespace: goplt}
spec:
  ports: [{name: tcp-clients-tls, port: 9093, targetPort: %d, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: goplt-kafka-bootstrap-1, namespace: goplt, labels: {kubernetes.io/service-name: goplt-kafka-bootstrap}}
addressType: IPv4
ports: [{name: tcp-clients-tls, port: %d, protocol: TCP}]
endpoints: [{addresses: [%q]}]
`, caPEM, port, port, NodeIP)
	for _, u := range set.Users {
		passwords[u.Name] = randomHex(t)
		secrets += fmt.Sprintf("---\napiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: goplt, labels: {strimzi.io/cluster: goplt, strimzi.io/kind: KafkaUser}}\nstringData: {password: %q}\n", u.Name, passwords[u.Name])
	}
	addr := net.JoinHostPort(NodeIP, strconv.Itoa(port))
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var applyErr error
	for actx.Err() == nil {
		if applyErr = kafkabroker.Apply(actx, []string{addr}, admin, set, passwords, kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})); applyErr == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if applyErr != nil {
		t.Fatalf("the broker's users, ACLs and topics: %v", applyErr)
	}
	if _, err := cp.Kubectl(ctx, []byte(secrets), "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

// brokerTLS makes a cluster CA and the broker's certificate for the node's address and names.
func brokerTLS(names ...string) ([]byte, tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cluster-ca", Organization: []string{"io.strimzi"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "goplt-kafka"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSNames: names, IPAddresses: []net.IP{net.ParseIP(NodeIP)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	return pemBlock("CERTIFICATE", caDER), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
