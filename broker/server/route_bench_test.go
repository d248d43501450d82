package server

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// benchRouted publishes b.N 16-byte messages on one server and waits until a
// subscriber on another server has them all. A probe on the same
// subscription tells when the interest has crossed.
func benchRouted(b *testing.B, pubURL, subURL string) {
	sc, err := nats.Connect(subURL)
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	var got, probes atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	sub, _ := sc.Subscribe("bench.*", func(m *nats.Msg) {
		if m.Subject == "bench.probe" {
			probes.Add(1)
			return
		}
		if got.Add(1) == n {
			close(done)
		}
	})
	noErr(b, sub.SetPendingLimits(-1, -1))
	noErr(b, sc.Flush())
	pc, err := nats.Connect(pubURL)
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	waitUntil(b, 5*time.Second, "the interest to cross", func() bool {
		noErr(b, pc.Publish("bench.probe", nil))
		noErr(b, pc.Flush())
		return probes.Load() > 0
	})
	payload := make([]byte, 16)
	b.SetBytes(16)
	b.ResetTimer()
	for range b.N {
		if err := pc.Publish("bench.x", payload); err != nil {
			b.Fatal(err)
		}
	}
	noErr(b, pc.Flush())
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatalf("got %d of %d", got.Load(), n)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkRoutedPublishToASubscriberOnAnotherServer(b *testing.B) {
	b.Run("natsforge", func(b *testing.B) {
		s := startCluster(b, 2)
		benchRouted(b, s[0].ClientURL(), s[1].ClientURL())
	})
	b.Run("nats-server", func(b *testing.B) {
		oa, ob := oracleCluster(b)
		benchRouted(b, fmt.Sprintf("nats://alice:pw@%s", oa.Addr()), fmt.Sprintf("nats://alice:pw@%s", ob.Addr()))
	})
}
