//go:build bench

package main

import (
	"errors"
	"time"
)

func (h *harness) operatorRows() []*row { return nil }

func profileNames() []string { return nil }

func runProfile(name, dir string, d time.Duration) error { return errors.New("todo") }

func writeChart(path string, rows []*row, m *meta) error { return nil }
