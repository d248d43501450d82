//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
)

// TestANatsUserInAnotherNamespaceGetsItsSecretThereAndConnects: a TLS
// NatsCluster admits NatsUsers of namespaces labelled for it; a team's
// NatsUser in its own namespace gets its credentials Secret (username,
// password, url, ca.crt) there, and an application connects with nothing
// but that Secret. The NatsUser's status shows every broker pod serving it.
// Deleting the NatsUser revokes it: the same credentials are refused.
func TestANatsUserInAnotherNamespaceGetsItsSecretThereAndConnects(t *testing.T) {
	c := ensureOperator(t)
	ctx := context.Background()
	clusterNS, teamNS := newNamespace(t), newNamespace(t)
	team := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: teamNS}, team); err != nil {
		t.Fatal(err)
	}
	team.Labels["nats-tenant"] = "team-a"
	if err := c.Update(ctx, team); err != nil {
		t.Fatal(err)
	}
	nc := newTLSNatsCluster(t, c, clusterNS, "shared", 3, natsforgev1alpha1.TLSSpec{})
	updateNatsCluster(t, c, nc, func(nc *natsforgev1alpha1.NatsCluster) {
		nc.Spec.Auth.AllowedUserNamespaces = &metav1.LabelSelector{MatchLabels: map[string]string{"nats-tenant": "team-a"}}
	})
	waitReady(t, c, nc, 5*time.Minute)

	nu := &natsforgev1alpha1.NatsUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "orders"},
		Spec: natsforgev1alpha1.NatsUserSpec{
			ClusterRef: natsforgev1alpha1.ClusterReference{Name: nc.Name, Namespace: clusterNS},
			Permissions: &natsforgev1alpha1.Permissions{
				Publish:   &natsforgev1alpha1.SubjectPermission{Allow: []natsforgev1alpha1.Subject{"orders.>"}},
				Subscribe: &natsforgev1alpha1.SubjectPermission{Allow: []natsforgev1alpha1.Subject{"orders.>"}},
			},
		},
	}
	if err := c.Create(ctx, nu); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, 2*time.Minute, "NatsUser "+teamNS+"/orders served by every broker pod", func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(nu), nu); err != nil {
			return false, err
		}
		ready := meta.FindStatusCondition(nu.Status.Conditions, natsforgev1alpha1.ConditionReady)
		return ready != nil && ready.Reason == natsforgev1alpha1.NatsUserServed && nu.Status.ServingPods == 3, nil
	})
	t.Logf("NatsUser served by all %d pods %s after it was created (config %s)", nu.Status.ServingPods, time.Since(start).Round(time.Millisecond), nu.Status.ConfigHash)

	// The Secret is in the team's namespace, owned by the NatsUser.
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: teamNS, Name: "orders-user-credentials"}, &s); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(&s, nu) || string(s.Data["username"]) != "orders" || len(s.Data["password"]) == 0 {
		t.Fatalf("credentials Secret: keys %v, owners %v", keys(s.Data), s.OwnerReferences)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.Data["ca.crt"]) {
		t.Fatal("the credentials Secret's ca.crt holds no certificate")
	}
	tlsConfig := &tls.Config{RootCAs: pool, ServerName: serviceName(nc), MinVersion: tls.VersionTLS12}
	dial := func() (*nats.Conn, error) {
		return nats.Connect(string(s.Data["url"]), nats.Secure(tlsConfig), nats.Timeout(3*time.Second), nats.NoReconnect(),
			nats.SetCustomDialer(serviceDialer{t: t, c: c, ns: clusterNS}))
	}
	var conn *nats.Conn
	waitFor(t, 15*time.Second, "a connection with nothing but the credentials Secret", func(context.Context) (bool, error) {
		var err error
		conn, err = dial()
		return err == nil, err
	})
	sub, err := conn.SubscribeSync("orders.new")
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Publish("orders.new", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Errorf("the NatsUser did not receive its own message on orders.new: %v", err)
	}
	conn.Close()

	// Deleting the NatsUser revokes it.
	if err := c.Delete(ctx, nu); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the deleted NatsUser's credentials refused", func(context.Context) (bool, error) {
		conn, err := dial()
		if err == nil {
			conn.Close()
			return false, nil
		}
		return isAuthError(err), nil
	})
}
