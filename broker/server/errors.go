package server

import "errors"

// Texts sent in -ERR, verbatim as nats-server sends them: clients match on them.
const (
	// These close the connection.
	errTextAuthViolation        = "Authorization Violation"
	errTextAuthTimeout          = "Authentication Timeout"
	errTextUnknownOp            = "Unknown Protocol Operation"
	errTextMaxPayload           = "Maximum Payload Violation"
	errTextMaxControlLine       = "maximum control line exceeded"
	errTextStale                = "Stale Connection"
	errTextBadClientProtocol    = "invalid client protocol"
	errTextMaxConnections       = "maximum connections exceeded"
	errTextNoRespondersHeaders  = "no responders requires headers support"
	errTextInvalidSubject       = "Invalid Subject"
	errTextInvalidPubSubject    = "Invalid Publish Subject"
	errTextMaxSubscriptions     = "maximum subscriptions exceeded"
	errTextPubViolationFmt      = "Permissions Violation for Publish to %q"
	errTextSubViolationFmt      = "Permissions Violation for Subscription to %q"
	errTextQueueSubViolationFmt = "Permissions Violation for Subscription to %q using queue %q"

	// errTextAuthExpired closes the connection: nats-server's text for
	// credentials that expire on a live connection; here, a previous
	// password whose grace window ended.
	errTextAuthExpired = "User Authentication Expired"
)

// Errors the parser returns. The handlers of the first group have already told
// the client and closed the connection; any other error makes the read loop
// close it as a protocol violation without a -ERR, as nats-server does.
var (
	errAuthentication = errors.New("authentication failed")
	errMaxPayload     = errors.New("maximum payload exceeded")
	errClosed         = errors.New("connection closed")

	errHeadersNotSupported = errors.New("message headers not supported")
)

// ClosedReason says why a connection ended.
type ClosedReason int

// Reasons a connection is closed.
const (
	ClientClosed ClosedReason = iota + 1
	AuthenticationTimeout
	AuthenticationViolation
	ProtocolViolation
	ParseError
	MaxPayloadExceeded
	MaxControlLineExceeded
	MaxConnectionsExceeded
	BadClientProtocolVersion
	NoRespondersRequiresHeaders
	StaleConnection
	SlowConsumerPendingBytes
	SlowConsumerWriteDeadline
	WriteError
	ReadError
	ServerShutdown
	AuthenticationRevoked
	LameDuckMode
	AuthenticationExpired
)

var closedReasonText = map[ClosedReason]string{
	ClientClosed:                "Client Closed",
	AuthenticationTimeout:       "Authentication Timeout",
	AuthenticationViolation:     "Authentication Failure",
	ProtocolViolation:           "Protocol Violation",
	ParseError:                  "Parse Error",
	MaxPayloadExceeded:          "Maximum Message Payload Exceeded",
	MaxControlLineExceeded:      "Maximum Control Line Exceeded",
	MaxConnectionsExceeded:      "Maximum Connections Exceeded",
	BadClientProtocolVersion:    "Bad Client Protocol Version",
	NoRespondersRequiresHeaders: "No Responders Requires Headers",
	StaleConnection:             "Stale Connection",
	SlowConsumerPendingBytes:    "Slow Consumer (Pending Bytes)",
	SlowConsumerWriteDeadline:   "Slow Consumer (Write Deadline)",
	WriteError:                  "Write Error",
	ReadError:                   "Read Error",
	ServerShutdown:              "Server Shutdown",
	AuthenticationRevoked:       "Authentication Revoked",
	LameDuckMode:                "Lame Duck Mode",
	AuthenticationExpired:       "Authentication Expired",
}

func (r ClosedReason) String() string {
	if s, ok := closedReasonText[r]; ok {
		return s
	}
	return "Unknown"
}
