// Package metering turns proxied DeepSeek calls into store records and
// writes them to a store in the background.
//
// A Meter is shared by all calls and is safe for concurrent use. For each
// metered call the caller runs Meter.Begin with the request body, then
// Call.Response with the response head, Call.Write with every response
// body byte as it passes to the client, and Call.Finish once. Finish reads
// the usage the upstream reported (from a JSON body or from a stream of
// server-sent events), prices it with a pricing.Table, counts it in
// Prometheus metrics and hands the record to a Sink. A second Finish
// returns the first record and sends nothing.
//
// Every body is inspected in bounded memory. A JSON body keeps a head of
// Options.MaxStoredBody bytes and a tail window where the usage object
// sits. A stream keeps one partial line and the assembled message. Gzip
// and deflate bodies are decoded as they arrive.
//
// Writer is the Sink used in production: a bounded queue drained by one
// goroutine that inserts records into a store.Store in batches and retries
// failed batches. Nothing on the request path waits for the database.
package metering
