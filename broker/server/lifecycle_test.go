package server

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestConnectionsThatComeAndGoLeaveNothingBehind(t *testing.T) {
	s := runServer(t, nil)
	baseline := runtime.NumGoroutine()
	for i := 0; i < 100; i++ {
		nc, err := nats.Connect(s.ClientURL(), nats.NoReconnect())
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 5; j++ {
			if _, err := nc.SubscribeSync(fmt.Sprintf("conn.%d.sub.%d", i, j)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := nc.QueueSubscribeSync("work", "q"); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		nc.Close()
	}
	eventually(t, 5*time.Second, "every connection and subscription to be gone", func() bool {
		return s.Stats().Connections == 0 && s.sl.Count() == 0
	})
	eventually(t, 5*time.Second, "the connections' goroutines to end", func() bool {
		return runtime.NumGoroutine() <= baseline+2
	})
	if st := s.Stats(); st.TotalConnections != 100 {
		t.Fatalf("total connections %d", st.TotalConnections)
	}
}
