// Byte integrity through sluice: many concurrent connections send random payloads (1 byte to
// 10 MiB, log-uniform) in random chunks with random pauses to two echo targets; some
// half-close right after their last byte and read the rest, the others read everything back
// first. Every byte must come back, in order, with nothing after it, and sluice's log line of
// each connection must count exactly the payload in each direction.
//
// The random plan comes from a seed printed at the start; SLUICE_INTEGRITY_SEED=N replays it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "echo_server.hpp"
#include "harness.hpp"

namespace sluice::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kConnections = 64;
constexpr size_t kMaxPayload = 10u << 20;    // 10 MiB
constexpr size_t kTotalBudget = 128u << 20;  // all payloads together, one way
constexpr size_t kMaxChunk = 256u << 10;

// A connected, non-blocking socket to 127.0.0.1:port, or -1.
int connect_nonblocking(uint16_t port, std::chrono::milliseconds timeout) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        pollfd p{fd, POLLOUT, 0};
        int error = 0;
        socklen_t len = sizeof error;
        if (errno != EINPROGRESS || ::poll(&p, 1, static_cast<int>(timeout.count())) != 1 ||
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
            ::close(fd);
            return -1;
        }
    }
    return fd;
}

uint16_t local_port(int fd) {
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
}

// One short round trip through sluice to an echo target: sluice is up and relays.
bool echo_once(uint16_t port) {
    const std::string message = "ping";
    const int fd = connect_nonblocking(port, 1000ms);
    if (fd < 0) return false;
    std::string got;
    bool ok = ::send(fd, message.data(), message.size(), MSG_NOSIGNAL) ==
                  static_cast<ssize_t>(message.size()) &&
              ::shutdown(fd, SHUT_WR) == 0;
    const auto deadline = Clock::now() + 1s;
    while (ok && Clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        char buffer[64];
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n > 0) got.append(buffer, static_cast<size_t>(n));
        if (n == 0) break;
        if (n < 0 && errno != EAGAIN && errno != EINTR) ok = false;
    }
    ::close(fd);
    return ok && got == message;
}

struct Plan {
    size_t size = 0;
    bool half_close_early = false;  // shutdown(SHUT_WR) right after the last byte
    uint64_t seed = 0;
};

struct Outcome {
    bool ok = false;
    uint16_t client_port = 0;
    size_t sent = 0;
    size_t received = 0;
    std::string error;
};

uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

std::vector<char> make_payload(size_t size, uint64_t seed) {
    std::vector<char> out(size);
    uint64_t state = seed;
    for (size_t i = 0; i < size; i += 8) {
        const uint64_t word = splitmix64(state);
        std::memcpy(out.data() + i, &word, std::min<size_t>(8, size - i));
    }
    return out;
}

// A size in [low, high], log-uniform: as many 1-10 byte sizes as 1-10 MB ones.
size_t log_uniform(std::mt19937_64& rng, size_t low, size_t high) {
    std::uniform_real_distribution<double> d(std::log(static_cast<double>(low)),
                                             std::log(static_cast<double>(high) + 1));
    return std::clamp(static_cast<size_t>(std::exp(d(rng))), low, high);
}

// Sends the plan's payload in random chunks with random pauses while reading the echo at
// random read sizes, comparing every byte read with the byte sent at that offset.
Outcome run_client(uint16_t port, const Plan& plan, Clock::time_point deadline) {
    Outcome out;
    const std::vector<char> payload = make_payload(plan.size, plan.seed);
    std::mt19937_64 rng(plan.seed * 31 + 7);
    const int fd = connect_nonblocking(port, 3000ms);
    if (fd < 0) {
        out.error = "connect failed";
        return out;
    }
    out.client_port = local_port(fd);
    std::vector<char> in(64 * 1024);
    size_t chunk_left = 0;
    auto next_send = Clock::now();
    bool shut = false;
    for (;;) {
        const auto now = Clock::now();
        if (now > deadline) {
            out.error = "timed out";
            break;
        }
        if (out.sent == plan.size && !shut &&
            (plan.half_close_early || out.received == plan.size)) {
            ::shutdown(fd, SHUT_WR);
            shut = true;
        }
        const bool may_send = out.sent < plan.size && now >= next_send;
        int wait_ms = 100;
        if (out.sent < plan.size && !may_send)
            wait_ms = static_cast<int>(std::clamp<int64_t>(
                std::chrono::duration_cast<std::chrono::milliseconds>(next_send - now).count() + 1,
                0, 100));
        pollfd p{fd, static_cast<short>(POLLIN | (may_send ? POLLOUT : 0)), 0};
        if (::poll(&p, 1, wait_ms) < 0 && errno != EINTR) {
            out.error = std::string("poll: ") + std::strerror(errno);
            break;
        }
        if (may_send && (p.revents & POLLOUT)) {
            if (chunk_left == 0)
                chunk_left = std::min(log_uniform(rng, 1, kMaxChunk), plan.size - out.sent);
            const ssize_t n = ::send(fd, payload.data() + out.sent, chunk_left, MSG_NOSIGNAL);
            if (n > 0) {
                out.sent += static_cast<size_t>(n);
                chunk_left -= static_cast<size_t>(n);
                // After one chunk in two a pause: usually under 3 ms, sometimes up to 20 ms.
                if (chunk_left == 0 && rng() % 2 == 0)
                    next_send = Clock::now() + std::chrono::microseconds(
                                                   rng() % 16 == 0 ? rng() % 20000 : rng() % 3000);
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                out.error = std::string("send: ") + std::strerror(errno);
                break;
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            const ssize_t n = ::recv(fd, in.data(), log_uniform(rng, 1, in.size()), 0);
            if (n > 0) {
                const size_t got = static_cast<size_t>(n);
                if (out.received + got > plan.size) {
                    out.error = "more bytes came back than were sent";
                    break;
                }
                if (std::memcmp(in.data(), payload.data() + out.received, got) != 0) {
                    size_t at = 0;
                    while (in[at] == payload[out.received + at]) ++at;
                    out.error = "byte " + std::to_string(out.received + at) + " differs";
                    break;
                }
                out.received += got;
            } else if (n == 0) {
                if (out.received == plan.size && shut)
                    out.ok = true;
                else
                    out.error = "EOF too early";
                break;
            } else if (errno != EAGAIN && errno != EINTR) {
                out.error = std::string("recv: ") + std::strerror(errno);
                break;
            }
        }
    }
    ::close(fd);
    return out;
}

// The value of `key=` in a logfmt line, or "".
std::string field(const std::string& line, const std::string& key) {
    const auto at = line.find(" " + key + "=");
    if (at == std::string::npos) return "";
    const auto start = at + key.size() + 2;
    return line.substr(start, line.find(' ', start) - start);
}

// sluice's log line for the connection from 127.0.0.1:client_port, or "".
// The last line: the kernel may give a test connection the client port of one of the
// readiness probes before it (loopback reuses ports in TIME_WAIT), whose line came first.
std::string conn_line(const std::string& log, uint16_t client_port) {
    const std::string needle = " conn client=127.0.0.1:" + std::to_string(client_port) + " ";
    const auto at = log.rfind(needle);
    if (at == std::string::npos) return "";
    return log.substr(at, log.find('\n', at) - at);
}

TEST(Integrity, EveryByteComesBackInOrderThroughSluice) {
    SKIP_IF_NO_KERNEL_RELAY();
    EchoServer echo_a;
    EchoServer echo_b;
    TempDir dir;
    // No health_check_endpoint: the targets are checked with a plain TCP connect.
    const std::string config =
        "listen = \"127.0.0.1:0\"\n" + relay_line() +
        "\n[health_check]\ninterval = \"200ms\"\ntimeout = \"200ms\"\n\n"
        "[[targets]]\naddress = \"127.0.0.1:" +
        std::to_string(echo_a.port()) +
        "\"\n\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(echo_b.port()) + "\"\n";
    Process sluice({SLUICE_BIN, "--config", dir.write("sluice.toml", config), "--workers", "2"},
                   dir.path() + "/sluice.log");
    uint16_t port = 0;
    ASSERT_TRUE(wait_until(
        [&] { return (port = logged_port(sluice.log(), " listening on ")) != 0; }, kPatience))
        << sluice.log();
    ASSERT_TRUE(wait_until([&] { return echo_once(port); }, kPatience)) << sluice.log();

    uint64_t seed = std::random_device{}();
    if (const char* fixed = std::getenv("SLUICE_INTEGRITY_SEED"))
        seed = std::strtoull(fixed, nullptr, 10);
    std::cout << "[ seed     ] SLUICE_INTEGRITY_SEED=" << seed << "\n";
    std::mt19937_64 rng(seed);

    // The extremes in both modes, then log-uniform sizes within the budget.
    std::vector<Plan> plans(kConnections);
    size_t total = 0;
    for (int i = 0; i < kConnections; ++i) {
        Plan& plan = plans[i];
        plan.half_close_early = i < 4 ? i % 2 == 0 : i % 3 == 0;
        plan.seed = rng();
        if (i < 4) {
            plan.size = i < 2 ? 1 : kMaxPayload;
        } else {
            do plan.size = log_uniform(rng, 1, kMaxPayload);
            while (total + plan.size > kTotalBudget);
        }
        total += plan.size;
    }

    const auto started = Clock::now();
    const auto deadline = started + 60s;
    std::vector<Outcome> outcomes(kConnections);
    std::vector<std::thread> clients;
    for (int i = 0; i < kConnections; ++i)
        clients.emplace_back([&, i] { outcomes[i] = run_client(port, plans[i], deadline); });
    for (auto& t : clients) t.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();

    int ok = 0;
    int half_closed = 0;
    size_t largest = 0;
    size_t smallest = kMaxPayload;
    for (int i = 0; i < kConnections; ++i) {
        const Plan& plan = plans[i];
        const Outcome& outcome = outcomes[i];
        if (plan.half_close_early) ++half_closed;
        largest = std::max(largest, plan.size);
        smallest = std::min(smallest, plan.size);
        if (outcome.ok) ++ok;
        EXPECT_TRUE(outcome.ok) << "connection " << i << " (" << plan.size << " bytes, "
                                << (plan.half_close_early ? "half-closed early" : "read first")
                                << "): " << outcome.error << "; sent " << outcome.sent
                                << ", received " << outcome.received;
    }
    std::cout << "[ measure  ] integrity: " << ok << "/" << kConnections << " connections intact ("
              << half_closed << " half-closed early), " << total << " bytes each way (payloads "
              << smallest << " to " << largest << " bytes), "
              << "targets " << echo_a.connections_with_data() << "+"
              << echo_b.connections_with_data() << " connections, in " << seconds << " s\n";
    EXPECT_EQ(ok, kConnections);
    EXPECT_GE(echo_a.bytes_echoed() + echo_b.bytes_echoed(), total);
    EXPECT_GT(echo_a.connections_with_data(), kConnections / 4) << "round robin over two targets";
    EXPECT_GT(echo_b.connections_with_data(), kConnections / 4) << "round robin over two targets";
    EXPECT_EQ(echo_a.failed() + echo_b.failed(), 0) << "a target connection ended without EOF";

    // sluice's own account: each connection's line counts the payload both ways, and the
    // client (who half-closed first) ended it.
    std::string log;
    const bool logged = wait_until(
        [&] {
            log = sluice.log();
            for (const Outcome& o : outcomes)
                if (o.client_port != 0 && conn_line(log, o.client_port).empty()) return false;
            return true;
        },
        15s);
    EXPECT_TRUE(logged) << "a connection has no log line";
    for (int i = 0; i < kConnections; ++i) {
        if (outcomes[i].client_port == 0) continue;
        const std::string line = conn_line(log, outcomes[i].client_port);
        if (line.empty()) continue;
        EXPECT_EQ(field(line, "bytes_to_target"), std::to_string(plans[i].size)) << line;
        EXPECT_EQ(field(line, "bytes_to_client"), std::to_string(plans[i].size)) << line;
        EXPECT_EQ(field(line, "end"), "client_closed") << line;
    }

    // A clean stop, and nothing for a sanitizer build to report.
    sluice.signal(SIGTERM);
    EXPECT_NE(sluice.wait_exit(15s), -1) << "sluice did not stop";
    for (const char* report : {"Sanitizer", "runtime error:"})
        EXPECT_EQ(sluice.log().find(report), std::string::npos) << sluice.log().substr(0, 20000);
}

}  // namespace
}  // namespace sluice::test
