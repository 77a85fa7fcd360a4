#include "worker/relay.hpp"

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>

#include "common/check.hpp"
#include "common/net.hpp"

namespace sluice::worker {
namespace {

// The two ends of a relayed connection; what a direction's step reports as failed.
enum class Side { none, client, target };

// One direction of the relay: bytes read from `from` wait in `buffer` until written to `to`.
struct Direction {
    int from;
    int to;
    Side from_side;
    Side to_side;
    char* buffer;
    size_t capacity;
    size_t offset = 0;
    size_t pending = 0;
    bool finished = false;         // EOF read and the write side of `to` shut down
    bool last_read_short = false;  // the last recv() returned less than the buffer holds
    uint64_t moved = 0;
    std::atomic<uint64_t>* counter = nullptr;
    uint64_t unflushed = 0;  // moved but not yet added to `counter`
    short want_from = 0;     // poll events needed before the next step can progress
    short want_to = 0;

    // Moves bytes without blocking until a socket would block or the direction finishes.
    // Bounded so one busy direction cannot starve the other. Returns the side whose socket
    // failed (a reset or error), or Side::none.
    Side pump() {
        want_from = want_to = 0;
        for (int round = 0; round < 8; ++round) {
            if (pending > 0) {
                const ssize_t n = ::send(to, buffer + offset, pending, MSG_NOSIGNAL);
                if (n > 0) {
                    offset += static_cast<size_t>(n);
                    pending -= static_cast<size_t>(n);
                    moved += static_cast<uint64_t>(n);
                    unflushed += static_cast<uint64_t>(n);
                    if (unflushed >= kFlushBytes) flush();
                    continue;
                }
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && errno == EAGAIN) {
                    want_to = POLLOUT;
                    return Side::none;
                }
                return to_side;
            }
            if (finished) return Side::none;
            if (last_read_short) {
                // The last read was short, so the socket was empty: wait in poll() instead of
                // a recv() that would only say EAGAIN (a system call saved per message).
                last_read_short = false;
                want_from = POLLIN;
                return Side::none;
            }
            const ssize_t n = ::recv(from, buffer, capacity, 0);
            if (n > 0) {
                offset = 0;
                pending = static_cast<size_t>(n);
                last_read_short = pending < capacity;
                continue;
            }
            if (n == 0) {
                ::shutdown(to, SHUT_WR);  // pass the half-close on; may fail if `to` is gone
                finished = true;
                return Side::none;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                want_from = POLLIN;
                return Side::none;
            }
            return from_side;
        }
        // Still busy: ask poll() for what this direction needs next; both are ready, so it
        // returns at once.
        if (pending > 0)
            want_to = POLLOUT;
        else
            want_from = POLLIN;
        return Side::none;
    }

    bool done() const { return finished && pending == 0; }

    void flush() {
        if (counter != nullptr && unflushed > 0) counter->fetch_add(unflushed);
        unflushed = 0;
    }

    static constexpr uint64_t kFlushBytes = 1 << 20;
};

// Bytes received on `fd` and not yet read. The hand-over waits for none on either side: the
// kernel relay's program is given whole segments, so the rest of one that a recv() read in
// part would be sent again (the kernel's tcp_read_skb() does not skip what was read).
// Segments that arrive after this look are whole.
int unread(int fd) {
    int bytes = 0;
    return ::ioctl(fd, FIONREAD, &bytes) == 0 ? bytes : 1;
}

// Cuts a side with a reset when the relay ends: a failure to set it would be a bug.
void make_close_reset(int fd) { SLUICE_CHECK(net::reset_on_close(fd) == 0); }

constexpr short kReadable = POLLIN | POLLHUP | POLLERR;
constexpr short kWritable = POLLOUT | POLLHUP | POLLERR;

// Waits until a socket is ready for what the directions need next (client in fds[0], target
// in fds[1]). Returns what poll() returned: 0 when `idle_timeout` (if above 0) passed first.
// A timeout longer than one poll() can wait is waited out in several.
int wait_for_progress(pollfd (&fds)[2], const Direction& to_target, const Direction& to_client,
                      std::chrono::milliseconds idle_timeout) {
    fds[0].events = static_cast<short>(to_target.want_from | to_client.want_to);
    fds[1].events = static_cast<short>(to_client.want_from | to_target.want_to);
    // A socket nobody waits on is left out, so its POLLHUP cannot spin the loop.
    fds[0].fd = fds[0].events ? to_target.from : -1;
    fds[1].fd = fds[1].events ? to_client.from : -1;
    fds[0].revents = fds[1].revents = 0;
    const bool bounded = idle_timeout.count() > 0;
    const net::Deadline deadline =
        bounded ? std::chrono::steady_clock::now() + idle_timeout : net::Deadline::max();
    for (;;) {
        const int ready = ::poll(fds, 2, bounded ? net::poll_timeout_ms(deadline) : -1);
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0 && std::chrono::steady_clock::now() < deadline) continue;
        return ready;
    }
}

// Watches a connection for the moment the kernel relay may take it over
// (RelayOptions::hand_over_after_exchange).
class HandOverWatch {
public:
    // Called after each round of pumps (the client's direction pumped first): true once the
    // client speaks again after the target spoke (an answer, or a greeting), nothing read is left
    // unwritten, neither side ended, and neither socket holds unread bytes.
    bool ready(const Direction& to_target, const Direction& to_client) {
        if (to_target.moved > moved_to_target_) {
            exchanged_ = exchanged_ || last_speaker_ == Side::target;
            last_speaker_ = Side::client;
        }
        if (to_client.moved > moved_to_client_) last_speaker_ = Side::target;
        moved_to_target_ = to_target.moved;
        moved_to_client_ = to_client.moved;
        return exchanged_ && to_target.pending == 0 && to_client.pending == 0 &&
               !to_target.finished && !to_client.finished && unread(to_target.from) == 0 &&
               unread(to_client.from) == 0;
    }

private:
    Side last_speaker_ = Side::none;
    bool exchanged_ = false;
    uint64_t moved_to_target_ = 0;
    uint64_t moved_to_client_ = 0;
};

}  // namespace

RelayResult relay(int client, int target, char* buffer_to_target, char* buffer_to_client,
                  size_t buffer_size, const RelayOptions& options) {
    Direction to_target{client, target, Side::client, Side::target, buffer_to_target, buffer_size};
    Direction to_client{target, client, Side::target, Side::client, buffer_to_client, buffer_size};
    to_target.counter = options.counters.to_target;
    to_client.counter = options.counters.to_client;
    const std::chrono::milliseconds idle_timeout = options.idle_timeout;
    HandOverWatch hand_over;
    bool target_finished_first = false;
    RelayResult result;
    pollfd fds[2] = {{client, 0, 0}, {target, 0, 0}};  // [0] the client, [1] the target
    bool first = true;
    for (;;) {
        // Step only a direction whose sockets poll() reported (or everything at first):
        // this saves a failing recv() per wake-up on the idle side of a request/response.
        const bool step_to_target =
            first || (fds[0].revents & kReadable) || (fds[1].revents & kWritable);
        const bool step_to_client =
            first || (fds[1].revents & kReadable) || (fds[0].revents & kWritable);
        first = false;
        Side failed = Side::none;
        if (step_to_target && !to_target.done()) failed = to_target.pump();
        if (failed == Side::none && step_to_client && !to_client.done()) failed = to_client.pump();
        if (failed != Side::none) {
            const bool client_failed = failed == Side::client;
            result.end = client_failed ? RelayEnd::client_error : RelayEnd::target_error;
            make_close_reset(client_failed ? target : client);
            break;
        }
        if (to_client.finished && !to_target.finished) target_finished_first = true;
        if (to_target.done() && to_client.done()) break;
        if (options.hand_over_after_exchange && hand_over.ready(to_target, to_client)) {
            result.end = RelayEnd::handed_over;
            break;
        }

        if (wait_for_progress(fds, to_target, to_client, idle_timeout) == 0) {
            // Idle too long: cut both sides.
            result.end = RelayEnd::idle_timeout;
            make_close_reset(client);
            make_close_reset(target);
            break;
        }
    }
    to_target.flush();
    to_client.flush();
    result.client_finished_first = !target_finished_first;
    result.bytes_to_target = to_target.moved;
    result.bytes_to_client = to_client.moved;
    return result;
}

}  // namespace sluice::worker
