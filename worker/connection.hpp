#pragma once
// What happens to one accepted client connection: pick a healthy target by the shared round
// robin, connect (on failure mark it DOWN and try the next healthy target, each at most
// once), relay until both sides are done, count it, and log one line when it ends; with no
// target to reach, the seed's 503 reply.

#include <cstddef>
#include <new>

#include "common/net.hpp"
#include "common/shared_table.hpp"
#include "conf/config.hpp"
#include "worker/kernel_relay.hpp"
#include "worker/open_connections.hpp"
#include "worker/selection.hpp"

namespace sluice::worker {

// The memory one connection thread works in, reused for every connection it serves: the
// candidate list of the pick, then the relay's two buffers. The candidate list is needed only
// until a target is connected, so it shares its storage with `to_target`, which the relay
// overwrites: a connection that sends a few hundred bytes each way writes the first bytes
// of to_target and of to_client, and nothing else here. The pool places the block
// kPageOffset bytes into a page whose lower part the thread's descriptor fills
// (acceptor_pool.cpp), so those first bytes of to_target cost no page of their own, and
// to_client starts a page, so that a reply of up to 4 KiB touches one page.
struct ThreadBuffers {
    static constexpr size_t kSize = 16 * 1024;
    static constexpr size_t kPage = 4096;
    static constexpr size_t kPageOffset = 3072;

    union {
        Candidates candidates;  // valid from start_candidates() until to_target is written
        char to_target[kSize];
    };

    // Up to the next page boundary, where to_client starts (see above).
    static constexpr size_t kFront = sizeof(Candidates) > kSize ? sizeof(Candidates) : kSize;
    char unused_[(kPageOffset + kFront + kPage - 1) / kPage * kPage - kPageOffset - kFront];
    char to_client[kSize];

    // Leaves every byte unwritten: a page costs memory only once something is written to it.
    ThreadBuffers() {}

    // An empty candidate list for a new connection, in place of whatever to_target held.
    Candidates& start_candidates() { return *new (&candidates) Candidates; }
};
static_assert((ThreadBuffers::kPageOffset + offsetof(ThreadBuffers, to_client)) %
                  ThreadBuffers::kPage ==
              0);

// What a worker's threads share: read-only config, the shared table, the load ledger (open
// connections, across generations), which worker this is (its column of
// SharedTable::worker_active), and the kernel relay's maps when connections may use them.
struct WorkerContext {
    const Config& config;
    SharedTable& table;
    LoadLedger& ledger;
    size_t worker_slot;                         // 0-based, below kMaxWorkers
    const KernelRelay* kernel_relay = nullptr;  // null: the user relay only
};

// Serves `client` (a non-blocking accepted socket from `peer`) to the end, registering its
// target socket in `connection` (open() on `client` already) so that the worker can cut it;
// one that was cut is logged with its stop reason. The caller closes `client`.
void serve_connection(int client, const net::Endpoint& peer, const WorkerContext& context,
                      ThreadBuffers& buffers, OpenConnections::Entry& connection);

// Sends the PROXY protocol header `target` asks for (if any) on `fd`, for `client` accepted
// from `peer`, within `timeout` in all. Returns 0 when sent (or none is asked for), else the
// errno that stopped it; EAFNOSUPPORT when no header can be built for these addresses, and
// then nothing is sent. On any error the caller must close the connection: relayed without
// its header, a client could speak for itself to a target that trusts the header.
int send_proxy_header(int client, const net::Endpoint& peer, const TargetConfig& target, int fd,
                      Millis timeout);

// Takes off the ledger the connections (open or connecting) that a dead predecessor of this
// worker left counted, and zeroes its share. Called before this worker serves anything.
void repair_active_counts(const WorkerContext& context);

// The seed's reply when no target is healthy, byte for byte.
inline constexpr char kServiceUnavailable[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 19\r\n\r\nService Unavailable";

// Writes the 503 reply, shuts down the write side and waits briefly for the client to
// close, so that its unread request does not turn our close into a reset that would
// destroy the reply before the client reads it.
void reply_unavailable(int client, char* scratch, size_t scratch_size);

}  // namespace sluice::worker
