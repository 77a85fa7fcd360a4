// The kernel relay, per connection: the thread hands its pair to the program's maps and then
// only waits for the ends. What relay() learns from its reads (EOF, errors, idleness, byte
// counts) it learns here from poll(POLLRDHUP) and the sockets' tcp_info.
#include "worker/kernel_relay.hpp"

#include <bpf/bpf.h>
#include <linux/sockios.h>
#include <linux/tcp.h>  // its tcp_info has the byte counts (glibc's lacks them)
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>

#include "common/check.hpp"
#include "common/net.hpp"
#include "worker/kernel_relay_maps.hpp"

namespace sluice::worker {

uint64_t socket_cookie(int fd) {
    uint64_t cookie = 0;
    socklen_t length = sizeof cookie;
    if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &length) != 0) return 0;
    return cookie;
}

namespace {

int update(int map, uint64_t key, int fd) {
    const uint64_t value = static_cast<uint64_t>(fd);
    return bpf_map_update_elem(map, &key, &value, BPF_ANY) == 0 ? 0 : errno;
}

void erase(int map, uint64_t key) { bpf_map_delete_elem(map, &key); }

}  // namespace

int KernelRelayMaps::insert(int a, int b, bool* a_was_relayed) const {
    if (a_was_relayed != nullptr) *a_was_relayed = false;
    const uint64_t key_a = socket_cookie(a);
    const uint64_t key_b = socket_cookie(b);
    if (key_a == 0 || key_b == 0) return ENOTSOCK;
    // Peers first: once a socket is relayed, the program looks its peer up for every segment.
    int err = update(peers, key_a, b);
    if (err == 0) err = update(peers, key_b, a);
    if (err == 0) err = update(relayed, key_a, a);
    if (err == 0) {
        if (a_was_relayed != nullptr) *a_was_relayed = true;
        err = update(relayed, key_b, b);
    }
    if (err != 0) {
        // With `a` relayed, bytes it received may wait in `b`'s queue: the caller removes
        // the pair once they are out (removing `b` now would drop them).
        if (a_was_relayed == nullptr || !*a_was_relayed) remove(a, b);
        return err;
    }
    // Setting SO_RCVLOWAT runs the socket's data-ready path, which is now the program's: what
    // arrived before the socket was relayed goes out first, in order.
    const int one = 1;
    ::setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    ::setsockopt(b, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    return 0;
}

void KernelRelayMaps::remove(int a, int b) const {
    const uint64_t key_a = socket_cookie(a);
    const uint64_t key_b = socket_cookie(b);
    erase(relayed, key_a);
    erase(relayed, key_b);
    erase(peers, key_a);
    erase(peers, key_b);
}

namespace {

using Clock = std::chrono::steady_clock;

// TCP states (the kernel's include/net/tcp_states.h) in which the peer's FIN has arrived,
// and so counts in tcpi_bytes_received as one byte more. A socket its owner still holds is
// CLOSE, not TIME_WAIT, once both FINs are through; CLOSE after a reset counts no FIN, but
// a reset ends the relay before any count matters.
constexpr uint8_t kTcpTimeWait = 6, kTcpClose = 7, kTcpCloseWait = 8, kTcpLastAck = 9,
                  kTcpClosing = 11;

struct TcpCounts {
    uint64_t received = 0;  // data bytes received, plus one once the FIN is in
    uint64_t acked = 0;     // bytes written and acknowledged
    uint32_t idle_ms = 0;   // since the last data arrived
    bool fin_in = false;
};

TcpCounts tcp_counts(int fd) {
    tcp_info info{};
    socklen_t length = sizeof info;
    TcpCounts counts;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return counts;
    counts.received = info.tcpi_bytes_received;
    counts.acked = info.tcpi_bytes_acked;
    counts.idle_ms = info.tcpi_last_data_recv;
    const uint8_t state = info.tcpi_state;
    counts.fin_in = state == kTcpCloseWait || state == kTcpLastAck || state == kTcpClosing ||
                    state == kTcpTimeWait || state == kTcpClose;
    return counts;
}

// The same, exact, while nothing but ACKs changes it (before the program writes into it).
uint64_t written_exact(int fd) {
    for (;;) {
        const uint64_t before = tcp_counts(fd).acked;
        int queued = 0;
        if (::ioctl(fd, SIOCOUTQ, &queued) != 0) queued = 0;
        if (tcp_counts(fd).acked == before) return before + static_cast<uint64_t>(queued);
    }
}

// One direction: bytes arriving on `from` that the program sends out of `to`.
struct Half {
    int from;
    int to;
    uint64_t read_by_user;  // bytes of `from` the user relay read before the hand-over
    uint64_t to_base;       // bytes_written(to) at the hand-over
    bool finished = false;  // `from`'s FIN seen and passed on as the shutdown of `to`
    uint64_t moved_at_finish = 0;

    // Bytes the program wrote into `to` (counted before `to` is shut: its FIN counts too).
    uint64_t moved() const {
        if (finished) return moved_at_finish;
        const uint64_t now = bytes_written(to);
        return now > to_base ? now - to_base : 0;
    }
    // Fixes the count at what `to` had been written when the worker cut it.
    void settle(uint64_t written_at_cut) {
        if (finished) return;  // counted when its FIN was passed on
        moved_at_finish = written_at_cut > to_base ? written_at_cut - to_base : 0;
        finished = true;
    }
    // Every byte `from` received has been written into `to`.
    bool delivered() const {
        const TcpCounts in = tcp_counts(from);
        const uint64_t data = in.received - (in.fin_in ? 1 : 0);
        return data <= read_by_user + moved();
    }
};

enum class Outcome { going, completed, client_error, target_error, idle };

// Waits until every byte `half.from` received has been written into `half.to` (the program
// runs in softirq and kworker context: it may still be at work, or `to`'s peer may not read),
// checking for resets meanwhile. Gives up as idle once no byte moved for `idle_timeout`.
Outcome wait_delivered(const Half& half, int client, int target,
                       std::chrono::milliseconds idle_timeout) {
    uint64_t last = half.moved();
    auto last_progress = Clock::now();
    long pause_us = 20;
    while (!half.delivered()) {
        // Errors only (a hang-up may be an end already handled), without waiting: the
        // program's progress wakes nobody, so the wait is a pause.
        pollfd sockets[2] = {{client, 0, 0}, {target, 0, 0}};
        if (::poll(sockets, 2, 0) > 0) {
            if (sockets[0].revents & POLLERR) return Outcome::client_error;
            if (sockets[1].revents & POLLERR) return Outcome::target_error;
        }
        const timespec pause{0, pause_us * 1000};
        nanosleep(&pause, nullptr);
        const uint64_t now = half.moved();
        if (now != last) {
            last = now;
            last_progress = Clock::now();
            pause_us = 20;
        } else {
            pause_us = std::min(pause_us * 2, 10'000L);
        }
        if (idle_timeout.count() > 0 && Clock::now() - last_progress >= idle_timeout)
            return Outcome::idle;
    }
    return Outcome::going;
}

// `half.from` sent its FIN: once every byte before it is delivered, shut `half.to`.
Outcome finish(Half& half, int client, int target, std::chrono::milliseconds idle_timeout) {
    const Outcome waited = wait_delivered(half, client, target, idle_timeout);
    if (waited != Outcome::going) return waited;
    half.moved_at_finish = half.moved();
    half.finished = true;
    ::shutdown(half.to, SHUT_WR);
    return Outcome::going;
}

// How long poll() may sleep before the idle timeout could be due: the time left since the
// last byte either way arrived. Outcome::idle once it is due; -1 with no idle timeout.
int idle_wait_ms(int client, int target, std::chrono::milliseconds idle_timeout, bool& due) {
    due = false;
    if (idle_timeout.count() <= 0) return -1;
    const uint32_t idle = std::min(tcp_counts(client).idle_ms, tcp_counts(target).idle_ms);
    const auto limit = static_cast<uint64_t>(idle_timeout.count());
    if (idle >= limit) {
        due = true;
        return 0;
    }
    return static_cast<int>(std::min<uint64_t>(limit - idle, 1'000'000'000));
}

void reset(int fd) { SLUICE_CHECK(net::reset_on_close(fd) == 0); }

// Waits for the ends of a relayed pair, as relay() does: FINs passed on after the bytes
// before them, a reset or error on either side resets the other, idle too long resets both.
Outcome wait_for_ends(Half& to_target, Half& to_client, int client, int target,
                      std::chrono::milliseconds idle_timeout, bool& target_finished_first) {
    for (;;) {
        if (to_target.finished && to_client.finished) return Outcome::completed;
        // A side whose FIN was seen is watched for errors only; one that is also shut for
        // writing has nothing more to say (its POLLHUP is expected).
        pollfd fds[2] = {
            {client, static_cast<short>(to_target.finished ? 0 : POLLRDHUP), 0},
            {target, static_cast<short>(to_client.finished ? 0 : POLLRDHUP), 0},
        };
        bool due = false;
        const int timeout = idle_wait_ms(client, target, idle_timeout, due);
        if (due) return Outcome::idle;
        const int ready = ::poll(fds, 2, timeout);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) continue;  // the idle timeout is looked at again above
        if (fds[0].revents & POLLERR) return Outcome::client_error;
        if (fds[1].revents & POLLERR) return Outcome::target_error;
        if ((fds[0].revents & POLLRDHUP) && !to_target.finished) {
            if (const Outcome o = finish(to_target, client, target, idle_timeout);
                o != Outcome::going)
                return o;
        }
        if ((fds[1].revents & POLLRDHUP) && !to_client.finished) {
            if (!to_target.finished) target_finished_first = true;
            if (const Outcome o = finish(to_client, client, target, idle_timeout);
                o != Outcome::going)
                return o;
        }
        // A hang-up that is not the end of both directions of that socket (its FIN in and
        // its write side shut) is a cut: disconnected under us.
        const bool client_done = to_target.finished && to_client.finished;
        if ((fds[0].revents & POLLHUP) && !client_done) return Outcome::client_error;
        if ((fds[1].revents & POLLHUP) && !client_done) return Outcome::target_error;
    }
}

}  // namespace

uint64_t bytes_written(int fd) {
    const uint64_t acked = tcp_counts(fd).acked;  // first: see bytes_written()'s promise
    int queued = 0;
    if (::ioctl(fd, SIOCOUTQ, &queued) != 0) queued = 0;
    return acked + static_cast<uint64_t>(queued);
}

bool relay_in_kernel(const KernelRelay& relay, int client, int target,
                     std::chrono::milliseconds idle_timeout, RelayResult& result,
                     const OpenConnections::Entry& connection) {
    Half to_target{client, target, result.bytes_to_target, written_exact(target)};
    Half to_client{target, client, result.bytes_to_client, written_exact(client)};
    const KernelRelayMaps maps{relay.peers_fd(), relay.relayed_fd()};
    bool client_relayed = false;
    if (maps.insert(client, target, &client_relayed) != 0) {
        // The client was relayed for a moment: what it sent meanwhile goes out of the target
        // before the user relay may write there.
        if (client_relayed) {
            if (wait_delivered(to_target, client, target, idle_timeout) == Outcome::going)
                result.bytes_to_target += to_target.moved();
            maps.remove(client, target);
        }
        return false;
    }
    bool target_finished_first = false;
    const Outcome outcome =
        wait_for_ends(to_target, to_client, client, target, idle_timeout, target_finished_first);
    WrittenAtCut at_cut;
    if (outcome != Outcome::completed && connection.was_cut(at_cut)) {
        to_target.settle(at_cut.target);
        to_client.settle(at_cut.client);
    }
    result.bytes_to_target += to_target.moved();
    result.bytes_to_client += to_client.moved();
    switch (outcome) {
        case Outcome::completed:
            result.end = RelayEnd::completed;
            result.client_finished_first = !target_finished_first;
            break;
        case Outcome::client_error:
            result.end = RelayEnd::client_error;
            reset(target);
            break;
        case Outcome::target_error:
            result.end = RelayEnd::target_error;
            reset(client);
            break;
        case Outcome::idle:
        case Outcome::going:
            result.end = RelayEnd::idle_timeout;
            reset(client);
            reset(target);
            break;
    }
    // Closing the sockets takes them out of the maps; taking them out here first keeps a
    // reset side from being looked up while the caller logs.
    maps.remove(client, target);
    return true;
}

}  // namespace sluice::worker
