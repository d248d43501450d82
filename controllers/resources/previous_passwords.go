/*
Copyright 2026 The natsforge Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package resources

import (
	"fmt"
	"reflect"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/conf"
)

// RenderPreviousPasswords renders the previous-passwords file for in's users
// (those in a rotation grace window), reads it back and checks it against
// the config's users as the broker will, so that a file the broker would
// refuse is never written. With no window open it is a file with an empty
// list: the broker is always pointed at it, so it always exists.
func RenderPreviousPasswords(nc *v1alpha1.NatsCluster, in ConfigInputs) ([]byte, error) {
	var pp []conf.PreviousPassword
	for _, u := range in.Users {
		if u.PreviousPasswordHash != "" {
			pp = append(pp, conf.PreviousPassword{User: u.Name, Password: u.PreviousPasswordHash, ValidUntil: u.PreviousValidUntil.UTC()})
		}
	}
	b, err := conf.RenderPreviousPasswords(pp)
	if err != nil {
		return nil, fmt.Errorf("render previous passwords: %w", err)
	}
	back, err := conf.ParsePreviousPasswords(b, PreviousPasswordsPath)
	if err != nil {
		return nil, fmt.Errorf("the broker would refuse the rendered previous passwords: %w", err)
	}
	if len(back) != len(pp) || len(pp) > 0 && !reflect.DeepEqual(back, pp) {
		return nil, fmt.Errorf("rendered previous passwords do not read back the same")
	}
	o := BrokerOptions(nc, in)
	o.PreviousPasswords = back
	if err := o.ValidatePreviousPasswords(); err != nil {
		return nil, fmt.Errorf("the broker would refuse the rendered previous passwords: %w", err)
	}
	return b, nil
}
