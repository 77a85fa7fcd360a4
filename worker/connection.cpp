#include "worker/connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <span>
#include <thread>

#include "common/check.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "worker/proxy_protocol.hpp"
#include "worker/relay.hpp"
#include "worker/selection.hpp"

namespace sluice::worker {
namespace {

// The 503 path: the reply and the lingering close after it share one deadline, and the
// close reads at most this much of what the client still sends, so a client cannot hold
// the thread for long or make it read for ever.
constexpr auto kUnavailableDeadline = std::chrono::seconds(1);
constexpr size_t kDrainCap = size_t{256} * 1024;
// While every candidate is at its max_connections, how often to look again (until
// queue_timeout): short against a connection's life, long enough not to spin on the table.
constexpr auto kQueueRetry = std::chrono::milliseconds(5);

// Disables Nagle on a socket we own. Linux does not fail TCP_NODELAY on a connection the
// peer has reset (unlike the BSDs' EINVAL), so a failure here is a bug, not the network.
void set_no_delay(int fd) {
    const int one = 1;
    SLUICE_CHECK(::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
}

// Passive health: a target this worker could not connect to is taken out of rotation at
// once for every worker; the health checker brings it back when a check passes.
void mark_down(TargetSlot& slot, const TargetConfig& target, const net::Endpoint& address, int err,
               DownReason reason) {
    slot.reason.store(static_cast<uint32_t>(reason));
    slot.passive_failures.fetch_add(1);
    if (slot.up.exchange(0) == 1) {
        LOG_WARN("target %s DOWN: %s (%s), seen by a worker; trying the next healthy target",
                 target.address.c_str(),
                 reason == DownReason::error ? std::strerror(err) : down_reason_name(reason),
                 address.to_string().c_str());
    }
}

// How the connection ended, for the log line: the stop reason if the worker cut it at its
// deadline (the relay then only saw the reset), else what the relay saw.
const char* end_name(const RelayResult& r, StopReason cut) {
    if (cut != StopReason::none) return cut_end_name(cut);
    switch (r.end) {
        case RelayEnd::completed:
            return r.client_finished_first ? "client_closed" : "target_closed";
        case RelayEnd::client_error:
        case RelayEnd::target_error: return "error";
        case RelayEnd::idle_timeout: return "timeout";
        case RelayEnd::handed_over: break;  // never the end of a connection
    }
    return "error";
}

double ms_between(std::chrono::steady_clock::time_point a,
                  std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// The outcome of trying the candidates of one pick.
struct ConnectOutcome {
    UniqueFd target;
    int slot = -1;          // the slot connected to
    net::Endpoint address;  // the address connected to (the slot's may change meanwhile)
    int last_errno = 0;     // of the last failed connect
    size_t at_cap = 0;      // candidates skipped because they were at max_connections
};

// Tries the candidates in turn. A candidate at its max_connections is skipped: its count in
// the load ledger (shared by every worker of every generation) is reserved with one
// fetch_add before connecting and given back if over the cap, so the cap holds exactly. The
// reservation goes into this worker's share (worker_active) before the connect starts, so a
// successor can give it back if this process is killed while connecting or relaying. On
// success both stay counted until release().
ConnectOutcome connect_first(const Candidates& candidates, const WorkerContext& context) {
    ConnectOutcome out;
    SharedTable& table = context.table;
    auto& mine = table.worker_active[context.worker_slot];
    for (size_t attempt = 0;; ++attempt) {
        const int index = candidates.at(attempt);
        if (index < 0) return out;
        TargetSlot& slot = table.slots[index];
        std::atomic<uint64_t>& active = context.ledger.active(table, static_cast<size_t>(index));
        const TargetConfig& target = context.config.targets[index / kAddressesPerTarget];
        const uint64_t before = active.fetch_add(1, std::memory_order_relaxed);
        if (target.max_connections != 0 && before >= target.max_connections) {
            active.fetch_sub(1, std::memory_order_relaxed);
            ++out.at_cap;
            continue;
        }
        // Killed between these two adds, a count would leak; in the other order, a repair
        // would take off one that was never added (the gauge would wrap): this is the safe way.
        mine[index].fetch_add(1, std::memory_order_relaxed);
        net::Endpoint& address = out.address;
        if (slot.load_address(address)) {
            out.target = net::connect_with_timeout(address, context.config.connect_timeout);
            if (out.target) {
                out.slot = index;
                return out;
            }
            out.last_errno = errno;
            // A failure that is this worker's own (descriptors, memory, local ports) does
            // not mark the target: a local shortage must not become an outage.
            const ErrnoClass failure = classify_errno(errno);
            if (failure.blames_target) mark_down(slot, target, address, errno, failure.reason);
        }
        mine[index].fetch_sub(1, std::memory_order_relaxed);  // share first, as in release()
        active.fetch_sub(1, std::memory_order_relaxed);
    }
}

// Gives back what connect_first reserved for slot `index`: this worker's share first, so a
// kill in between leaves one too many (a leak of one), never one too few.
void release(const WorkerContext& context, int index) {
    context.table.worker_active[context.worker_slot][index].fetch_sub(1, std::memory_order_relaxed);
    context.ledger.active(context.table, static_cast<size_t>(index))
        .fetch_sub(1, std::memory_order_relaxed);
}

// Picks and connects; while every candidate is at its max_connections, tries again every
// kQueueRetry until queue_timeout (the waiting client holds only this thread).
ConnectOutcome pick_and_connect(const WorkerContext& context, Candidates& candidates) {
    thread_local Picker picker(context.config);
    const auto deadline = std::chrono::steady_clock::now() + context.config.queue_timeout;
    for (;;) {
        picker.pick(context.table, context.ledger, monotonic_ms(), candidates);
        ConnectOutcome outcome = connect_first(candidates, context);
        if (outcome.target || outcome.at_cap == 0 || std::chrono::steady_clock::now() >= deadline)
            return outcome;
        std::this_thread::sleep_for(kQueueRetry);
    }
}

// No target could take the connection: count and log it, and answer as on_no_target says.
void turn_away(int client, const net::Endpoint& peer, const WorkerContext& context,
               const ConnectOutcome& outcome, const Candidates& candidates, ThreadBuffers& buffers,
               std::chrono::steady_clock::time_point accepted) {
    const bool limited = outcome.at_cap > 0;
    (limited ? context.table.rejected_limit : context.table.rejected_no_target)
        .fetch_add(1, std::memory_order_relaxed);
    const char* end = limited                           ? "limit"
                      : candidates.count == 0           ? "no_target"
                      : outcome.last_errno == ETIMEDOUT ? "timeout"
                                                        : "refused_all";
    const bool reply = context.config.on_no_target == NoTargetReply::http_503;
    if (log::enabled(log::Level::info)) {
        char client_text[64];
        peer.format(client_text, sizeof client_text);
        LOG_INFO(
            "conn client=%s target=- duration_ms=%.3f bytes_to_target=0 "
            "bytes_to_client=%zu end=%s",
            client_text, ms_between(accepted, std::chrono::steady_clock::now()),
            reply ? sizeof kServiceUnavailable - 1 : 0, end);
    }
    if (reply) reply_unavailable(client, buffers.to_client, sizeof buffers.to_client);
}

// Relays until the connection ends: in user space, in the kernel, or the first exchange in
// user space and the rest in the kernel, as `relay` and the loaded kernel relay allow. A
// connection the kernel cannot take goes on in user space. Byte counters as relay() keeps.
RelayResult relay_connection(int client, int target, const WorkerContext& context,
                             ThreadBuffers& buffers, TargetSlot& slot,
                             const OpenConnections::Entry& connection) {
    const KernelRelay* kernel = context.kernel_relay;
    RelayOptions options;
    options.counters = ByteCounters{&slot.bytes_to_target, &slot.bytes_to_client};
    options.idle_timeout = context.config.idle_timeout;
    options.hand_over_after_exchange = kernel != nullptr;
    RelayResult result;
    if (kernel == nullptr || context.config.relay != RelayMode::kernel) {
        result = relay(client, target, buffers.to_target, buffers.to_client, ThreadBuffers::kSize,
                       options);
        if (result.end != RelayEnd::handed_over) return result;
    }
    const RelayResult before = result;
    const bool in_kernel =
        relay_in_kernel(*kernel, client, target, context.config.idle_timeout, result, connection);
    slot.bytes_to_target.fetch_add(result.bytes_to_target - before.bytes_to_target,
                                   std::memory_order_relaxed);
    slot.bytes_to_client.fetch_add(result.bytes_to_client - before.bytes_to_client,
                                   std::memory_order_relaxed);
    if (in_kernel) return result;
    options.hand_over_after_exchange = false;
    RelayResult rest =
        relay(client, target, buffers.to_target, buffers.to_client, ThreadBuffers::kSize, options);
    rest.bytes_to_target += result.bytes_to_target;
    rest.bytes_to_client += result.bytes_to_client;
    return rest;
}

}  // namespace

int send_proxy_header(int client, const net::Endpoint& peer, const TargetConfig& target, int fd,
                      Millis timeout) {
    if (target.send_proxy == ProxyProtocol::none) return 0;
    const net::Deadline deadline = std::chrono::steady_clock::now() + timeout;
    const net::Endpoint destination = net::local_endpoint(client);
    char header[kMaxProxyHeader];
    const size_t length = target.send_proxy == ProxyProtocol::v1
                              ? proxy_header_v1(peer, destination, header)
                              : proxy_header_v2(peer, destination, header);
    if (length == 0) return EAFNOSUPPORT;
    return net::send_all(fd, std::span<const char>(header, length), deadline);
}

void reply_unavailable(int client, char* scratch, size_t scratch_size) {
    const net::Deadline deadline = std::chrono::steady_clock::now() + kUnavailableDeadline;
    const std::span<const char> reply(kServiceUnavailable, sizeof kServiceUnavailable - 1);
    const int err = net::send_all(client, reply, deadline);
    if (err != 0 && err != ETIMEDOUT) return;  // the client is gone
    ::shutdown(client, SHUT_WR);
    // Lingering close: read and drop what the client still sends, until it closes, until
    // the deadline, or up to kDrainCap bytes.
    size_t drained = 0;
    while (drained < kDrainCap && std::chrono::steady_clock::now() < deadline) {
        if (net::wait_ready(client, POLLIN, deadline) != 0) return;
        const ssize_t n = ::recv(client, scratch, scratch_size, 0);
        if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) return;
        if (n > 0) drained += static_cast<size_t>(n);
    }
}

void repair_active_counts(const WorkerContext& context) {
    auto& mine = context.table.worker_active[context.worker_slot];
    for (size_t i = 0; i < kMaxSlots; ++i) {
        const uint32_t left = mine[i].exchange(0);
        if (left > 0) context.ledger.active(context.table, i).fetch_sub(left);
    }
}

void serve_connection(int client, const net::Endpoint& peer, const WorkerContext& context,
                      ThreadBuffers& buffers, OpenConnections::Entry& connection) {
    const auto accepted = std::chrono::steady_clock::now();
    SharedTable& table = context.table;
    table.connections.fetch_add(1, std::memory_order_relaxed);
    Candidates& candidates = buffers.start_candidates();
    ConnectOutcome outcome = pick_and_connect(context, candidates);
    if (!outcome.target)
        return turn_away(client, peer, context, outcome, candidates, buffers, accepted);
    connection.set_target(outcome.target.get());
    const auto connected = std::chrono::steady_clock::now();
    const int index = outcome.slot;
    TargetSlot& slot = table.slots[index];
    const TargetConfig& target = context.config.targets[index / kAddressesPerTarget];
    slot.connections.fetch_add(1, std::memory_order_relaxed);
    set_no_delay(client);
    set_no_delay(outcome.target.get());
    RelayResult result;
    const char* end = nullptr;
    if (const int err = send_proxy_header(client, peer, target, outcome.target.get(),
                                          context.config.connect_timeout);
        err != 0) {
        // Fail closed: neither side may take the unfinished exchange for a complete one.
        reset_connection(client);
        reset_connection(outcome.target.get());
        LOG_WARN("cannot send the PROXY header to %s: %s; connection closed",
                 target.address.c_str(), std::strerror(err));
        end = "proxy_header";
    } else {
        result = relay_connection(client, outcome.target.get(), context, buffers, slot, connection);
    }
    const StopReason cut = connection.close();
    release(context, index);
    if (end == nullptr) end = end_name(result, cut);
    if (log::enabled(log::Level::info)) {
        char client_text[64];
        char target_text[64];
        peer.format(client_text, sizeof client_text);
        outcome.address.format(target_text, sizeof target_text);
        const auto ended = std::chrono::steady_clock::now();
        LOG_INFO(
            "conn client=%s target=%s address=%s connect_ms=%.3f duration_ms=%.3f "
            "bytes_to_target=%llu bytes_to_client=%llu end=%s",
            client_text, target.address.c_str(), target_text, ms_between(accepted, connected),
            ms_between(accepted, ended), static_cast<unsigned long long>(result.bytes_to_target),
            static_cast<unsigned long long>(result.bytes_to_client), end);
    }
}

}  // namespace sluice::worker
