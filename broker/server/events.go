package server

import (
	"time"
)

// The JSON of the system account's messages, field for field as
// nats-server v2.15 writes them (server/events.go), so that the nats CLI and
// other tools read them as they read nats-server's.

const (
	connectEventSubj    = "$SYS.ACCOUNT.%s.CONNECT"
	disconnectEventSubj = "$SYS.ACCOUNT.%s.DISCONNECT"
	authErrorEventSubj  = "$SYS.SERVER.%s.CLIENT.AUTH.ERR"
	serverStatsSubj     = "$SYS.SERVER.%s.STATSZ"
	serverDirectReqSubj = "$SYS.REQ.SERVER.%s.%s"
	serverPingReqSubj   = "$SYS.REQ.SERVER.PING.%s"
	serverStatsPingReq  = "$SYS.REQ.SERVER.PING"

	connectEventMsgType    = "io.nats.server.advisory.v1.client_connect"
	disconnectEventMsgType = "io.nats.server.advisory.v1.client_disconnect"
)

// eventServerInfo identifies the server that sent a message (ServerInfo).
type eventServerInfo struct {
	Name      string    `json:"name"`
	Host      string    `json:"host"`
	ID        string    `json:"id"`
	Cluster   string    `json:"cluster,omitempty"`
	Version   string    `json:"ver"`
	JetStream bool      `json:"jetstream"`
	Flags     uint64    `json:"flags"`
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
}

// serverStatsMsg answers $SYS.REQ.SERVER.PING and is sent periodically
// (ServerStatsMsg).
type serverStatsMsg struct {
	Server eventServerInfo `json:"server"`
	Stats  serverStats     `json:"statsz"`
}

// serverStats is ServerStats, less what the broker has not (gateways,
// JetStream).
type serverStats struct {
	Start               time.Time    `json:"start"`
	Mem                 int64        `json:"mem"`
	Cores               int          `json:"cores"`
	CPU                 float64      `json:"cpu"`
	Connections         int          `json:"connections"`
	TotalConnections    uint64       `json:"total_connections"`
	ActiveAccounts      int          `json:"active_accounts"`
	NumSubs             uint32       `json:"subscriptions"`
	Sent                dataStats    `json:"sent"`
	SentToClients       dataStats    `json:"sent_to_clients"`
	Received            dataStats    `json:"received"`
	ReceivedFromClients dataStats    `json:"received_from_clients"`
	SlowConsumers       int64        `json:"slow_consumers"`
	Routes              []*routeStat `json:"routes,omitempty"`
	ActiveServers       int          `json:"active_servers,omitempty"`
	MaxProcs            int          `json:"gomaxprocs,omitempty"`
}

// routeStat is RouteStat.
type routeStat struct {
	ID       uint64    `json:"rid"`
	Name     string    `json:"name,omitempty"`
	Sent     dataStats `json:"sent"`
	Received dataStats `json:"received"`
	Pending  int       `json:"pending"`
}

// dataStats is DataStats (MsgBytes inlined).
type dataStats struct {
	Msgs  int64 `json:"msgs"`
	Bytes int64 `json:"bytes"`
}

// typedEvent is TypedEvent.
type typedEvent struct {
	Type string    `json:"type"`
	ID   string    `json:"id"`
	Time time.Time `json:"timestamp"`
}

// eventClientInfo is ClientInfo.
type eventClientInfo struct {
	Start      *time.Time    `json:"start,omitempty"`
	Host       string        `json:"host,omitempty"`
	ID         uint64        `json:"id,omitempty"`
	Account    string        `json:"acc,omitempty"`
	User       string        `json:"user,omitempty"`
	Name       string        `json:"name,omitempty"`
	Lang       string        `json:"lang,omitempty"`
	Version    string        `json:"ver,omitempty"`
	RTT        time.Duration `json:"rtt,omitempty"`
	Server     string        `json:"server,omitempty"`
	Cluster    string        `json:"cluster,omitempty"`
	Stop       *time.Time    `json:"stop,omitempty"`
	Kind       string        `json:"kind,omitempty"`
	ClientType string        `json:"client_type,omitempty"`
}

// connectEventMsg is ConnectEventMsg.
type connectEventMsg struct {
	typedEvent
	Server eventServerInfo `json:"server"`
	Client eventClientInfo `json:"client"`
}

// disconnectEventMsg is DisconnectEventMsg, also the auth error event's.
type disconnectEventMsg struct {
	typedEvent
	Server   eventServerInfo `json:"server"`
	Client   eventClientInfo `json:"client"`
	Sent     dataStats       `json:"sent"`
	Received dataStats       `json:"received"`
	Reason   string          `json:"reason"`
}

// serverAPIResponse answers the $SYS.REQ.SERVER endpoints other than STATSZ
// (ServerAPIResponse).
type serverAPIResponse struct {
	Server *eventServerInfo `json:"server"`
	Data   any              `json:"data,omitempty"`
	Error  *apiError        `json:"error,omitempty"`
}

// apiError is ApiError.
type apiError struct {
	Code        int    `json:"code"`
	Description string `json:"description,omitempty"`
}

// eventFilterOptions narrow a PING request to some servers
// (EventFilterOptions).
type eventFilterOptions struct {
	Name       string   `json:"server_name,omitempty"`
	Cluster    string   `json:"cluster,omitempty"`
	Host       string   `json:"host,omitempty"`
	ExactMatch bool     `json:"exact_match,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	Domain     string   `json:"domain,omitempty"`
}

// serverID answers IDZ (ServerID).
type serverID struct {
	Name string `json:"name"`
	Host string `json:"host"`
	ID   string `json:"id"`
}

// healthStatus answers HEALTHZ (HealthStatus).
type healthStatus struct {
	Status     string `json:"status"`
	StatusCode int    `json:"status_code,omitempty"`
	Error      string `json:"error,omitempty"`
}
