package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/deepmeter/deepmeter/store"
	"github.com/deepmeter/deepmeter/store/storetest"
)

// sampleTime is the creation time of records in tests outside the suite.
var sampleTime = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

// BenchmarkInsertBatch inserts batches of 500 new records of about 4 KB
// each, the batch writer's unit of work, and reports records per second.
func BenchmarkInsertBatch(b *testing.B) {
	const batchSize = 500
	backends := []struct {
		name string
		open func(testing.TB) store.Store
	}{
		{"sqlite", openSQLiteStore},
		{"postgres", openPostgresStore},
	}
	for _, bk := range backends {
		b.Run(bk.name, func(b *testing.B) {
			s := bk.open(b)
			defer s.Close()
			ctx := context.Background()
			batch := make([]store.Record, batchSize)
			for i := range batch {
				batch[i] = storetest.SampleRecord(i, sampleTime.Add(time.Duration(i)*time.Millisecond))
			}

			inserted := 0
			for b.Loop() {
				for i := range batch {
					batch[i].ID = fmt.Sprintf("bench-%09d", inserted+i)
				}
				if err := s.Insert(ctx, batch); err != nil {
					b.Fatalf("Insert: %v", err)
				}
				inserted += batchSize
			}
			b.ReportMetric(float64(inserted)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
