package main

import (
	"errors"

	"github.com/natsforge/natsforge/broker/conf"
)

// applyTLS lays the TLS flags over the options as nats-server does
// (overrideTLS): any of --tls, --tlsverify, --tlscert, --tlskey, --tlscacert
// replaces the config file's tls block with one made of the flags alone, and
// --tls=false removes it. --https_port serves monitoring over HTTPS.
func (f *flags) applyTLS(opts *conf.Options) error {
	if f.set["ms"] {
		opts.HTTPSPort = f.httpsPort
	}
	override := false
	for _, name := range []string{"tls", "tlsverify", "tlscert", "tlskey", "tlscacert"} {
		override = override || f.set[name]
	}
	if f.set["tls"] && !f.tls {
		opts.TLS = nil
		return nil
	}
	if !override {
		return nil
	}
	if f.tlsCert == "" {
		return errors.New("TLS Server certificate must be present and valid")
	}
	if f.tlsKey == "" {
		return errors.New("TLS Server private key must be present and valid")
	}
	opts.TLS = &conf.TLS{CertFile: f.tlsCert, KeyFile: f.tlsKey, CAFile: f.tlsCACert, Verify: f.tlsVerify}
	return nil
}
