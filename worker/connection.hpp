#pragma once
// What happens to one accepted client connection: pick a healthy target by the shared round
// robin, connect (on failure mark it DOWN and try the next healthy target, each at most
// once), relay until both sides are done, count it, and log one line when it ends; with no
// target to reach, the seed's 503 reply.

#include <cstddef>

#include "common/net.hpp"
#include "common/shared_table.hpp"
#include "conf/config.hpp"
#include "worker/kernel_relay.hpp"
#include "worker/open_connections.hpp"

namespace sluice::worker {

// Buffers owned by one connection thread, reused for every connection it serves.
struct ThreadBuffers {
    static constexpr size_t kSize = 16 * 1024;
    char to_target[kSize];
    char to_client[kSize];
};

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
