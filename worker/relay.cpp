#include "worker/relay.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace sluice::worker {
namespace {

// One direction of the relay: bytes read from `from` wait in `buffer` until written to `to`.
struct Direction {
    int from;
    int to;
    char* buffer;
    size_t capacity;
    size_t offset = 0;
    size_t pending = 0;
    bool finished = false;  // EOF read and the write side of `to` shut down
    bool drained = false;   // the last recv() returned less than the buffer holds
    uint64_t moved = 0;
    std::atomic<uint64_t>* counter = nullptr;
    uint64_t unflushed = 0;  // moved but not yet added to `counter`
    short want_from = 0;     // poll events needed before the next step can progress
    short want_to = 0;

    enum class Status { ok, error_from, error_to };

    // Moves bytes without blocking until a socket would block or the direction finishes.
    // Bounded so one busy direction cannot starve the other.
    Status pump() {
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
                    return Status::ok;
                }
                return Status::error_to;
            }
            if (finished) return Status::ok;
            if (drained) {
                // The last read was short, so the socket was empty: wait in poll() instead of
                // a recv() that would only say EAGAIN (a system call saved per message).
                drained = false;
                want_from = POLLIN;
                return Status::ok;
            }
            const ssize_t n = ::recv(from, buffer, capacity, 0);
            if (n > 0) {
                offset = 0;
                pending = static_cast<size_t>(n);
                drained = pending < capacity;
                continue;
            }
            if (n == 0) {
                ::shutdown(to, SHUT_WR);  // pass the half-close on; may fail if `to` is gone
                finished = true;
                return Status::ok;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                want_from = POLLIN;
                return Status::ok;
            }
            return Status::error_from;
        }
        // Still busy: ask poll() for what this direction needs next; both are ready, so it
        // returns at once.
        if (pending > 0)
            want_to = POLLOUT;
        else
            want_from = POLLIN;
        return Status::ok;
    }

    bool done() const { return finished && pending == 0; }

    void flush() {
        if (counter != nullptr && unflushed > 0) counter->fetch_add(unflushed);
        unflushed = 0;
    }

    static constexpr uint64_t kFlushBytes = 1 << 20;
};

// Closing a socket after SO_LINGER {1, 0} sends a reset instead of a FIN.
void make_close_reset(int fd) {
    const linger abort_on_close{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
}

constexpr short kReadable = POLLIN | POLLHUP | POLLERR;
constexpr short kWritable = POLLOUT | POLLHUP | POLLERR;

}  // namespace

RelayResult relay(int client, int target, char* buffer_to_target, char* buffer_to_client,
                  size_t buffer_size, ByteCounters counters, int idle_timeout_ms) {
    Direction up{client, target, buffer_to_target, buffer_size};
    Direction down{target, client, buffer_to_client, buffer_size};
    up.counter = counters.to_target;
    down.counter = counters.to_client;
    bool down_finished_first = false;
    RelayResult result;
    pollfd fds[2] = {{client, 0, 0}, {target, 0, 0}};
    bool first = true;
    for (;;) {
        // Step only a direction whose sockets poll() reported (or everything at first):
        // this saves a failing recv() per wake-up on the idle side of a request/response.
        const bool step_up = first || (fds[0].revents & kReadable) || (fds[1].revents & kWritable);
        const bool step_down =
            first || (fds[1].revents & kReadable) || (fds[0].revents & kWritable);
        first = false;
        Direction::Status status = Direction::Status::ok;
        if (step_up && !up.done()) status = up.pump();
        if (status == Direction::Status::ok && step_down && !down.done()) {
            status = down.pump();
            if (status == Direction::Status::error_from)
                status = Direction::Status::error_to;
            else if (status == Direction::Status::error_to)
                status = Direction::Status::error_from;
        }
        if (status != Direction::Status::ok) {
            // error_from: the client side failed (seen from `up`); error_to: the target side.
            const bool client_failed = status == Direction::Status::error_from;
            result.end = client_failed ? RelayEnd::client_error : RelayEnd::target_error;
            make_close_reset(client_failed ? target : client);
            break;
        }
        if (down.finished && !up.finished) down_finished_first = true;
        if (up.done() && down.done()) break;

        fds[0].events = static_cast<short>(up.want_from | down.want_to);
        fds[1].events = static_cast<short>(down.want_from | up.want_to);
        // A socket nobody waits on is left out, so its POLLHUP cannot spin the loop.
        fds[0].fd = fds[0].events ? client : -1;
        fds[1].fd = fds[1].events ? target : -1;
        fds[0].revents = fds[1].revents = 0;
        int ready;
        while ((ready = ::poll(fds, 2, idle_timeout_ms)) < 0 && errno == EINTR) {
        }
        if (ready == 0) {  // idle too long: cut both sides
            result.end = RelayEnd::idle_timeout;
            make_close_reset(client);
            make_close_reset(target);
            break;
        }
    }
    up.flush();
    down.flush();
    result.client_finished_first = !down_finished_first;
    result.bytes_to_target = up.moved;
    result.bytes_to_client = down.moved;
    return result;
}

}  // namespace sluice::worker
