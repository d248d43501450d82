package main

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/natsforge/natsforge/broker/conf"
)

// applyCluster lays --cluster, --routes, --cluster_name and --no_advertise
// over the config's cluster block, as nats-server does.
func (f *flags) applyCluster(opts *conf.Options) error {
	if !f.set["cluster"] && !f.set["routes"] && !f.set["cluster_name"] && !f.set["no_advertise"] {
		return nil
	}
	cl := &conf.Cluster{}
	if opts.Cluster != nil {
		*cl = *opts.Cluster
	}
	if f.set["cluster"] {
		u, err := url.Parse(f.cluster)
		if err != nil || u.Host == "" {
			return fmt.Errorf("--cluster: want a URL like nats://0.0.0.0:6222, got %q", f.cluster)
		}
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil {
			return fmt.Errorf("--cluster: %w", err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return fmt.Errorf("--cluster: bad port %q", port)
		}
		cl.Host, cl.Port = host, p
		if u.User != nil {
			// As nats-server: credentials in --cluster are the cluster authorization.
			pw, _ := u.User.Password()
			cl.Authorization = &conf.ClusterAuthorization{User: u.User.Username(), Password: pw}
		}
	}
	if f.set["routes"] {
		cl.Routes = nil
		for _, r := range strings.Split(f.routes, ",") {
			if r = strings.TrimSpace(r); r != "" {
				cl.Routes = append(cl.Routes, r)
			}
		}
	}
	if f.set["cluster_name"] {
		cl.Name = f.clusterName
	}
	if f.set["no_advertise"] {
		cl.NoAdvertise = f.noAdvertise
	}
	opts.Cluster = cl
	return nil
}
