// The kernel relay (docs/ARCHITECTURE.md, "The kernel relay") end to end. What the user relay
// guarantees holds in the kernel too: bytes queued before the hand-over arrive, in order;
// half-closes and resets pass through with exact counts; the idle timeout cuts. Its maps keep
// no entry for a connection that is over, however it ended (normally, a killed worker, a
// reload, a cut at drain_timeout). A worker that dropped privileges still relays in the
// kernel, and without the capabilities "auto" falls back to the user relay while "kernel"
// refuses to start.
//
// Each test that needs the kernel relay sets `relay` itself and is skipped where it cannot
// load (not root, no sockmap): kernel_relay_loads().

#include <bpf/bpf.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "echo_server.hpp"
#include "harness.hpp"
#include "held_connection.hpp"
#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

std::string random_bytes(size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(gen());
    return s;
}

// "" when `got` is `want`; else how it differs (the bytes themselves are too many to print).
std::string difference(const std::string& got, const std::string& want) {
    if (got == want) return "";
    const auto [at, _] = std::mismatch(got.begin(), got.end(), want.begin(), want.end());
    return std::to_string(got.size()) + " bytes instead of " + std::to_string(want.size()) +
           ", first difference at offset " + std::to_string(at - got.begin());
}

// One end of a TCP connection: the test's client, or one of its target's connections. Every
// wait is bounded by kPatience and, on a target, ends when its server stops.
class End {
public:
    explicit End(int fd, const LoopbackServer* server = nullptr) : fd_(fd), server_(server) {}

    bool send_all(std::string_view data) const {
        size_t sent = 0;
        while (sent < data.size()) {
            if (!wait(POLLOUT)) return false;
            const ssize_t n =
                ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                sent += static_cast<size_t>(n);
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                return false;
        }
        return true;
    }
    // Reads until `limit` bytes came (`how` is then ""), or until the peer's EOF ("EOF"), a
    // reset ("reset"), another error, or kPatience ("timeout").
    std::string read(size_t limit, std::string& how) const {
        std::string data;
        std::vector<char> buffer(64 * 1024);
        how.clear();
        while (data.size() < limit) {
            if (!wait(POLLIN)) {
                how = "timeout";
                break;
            }
            const ssize_t n = ::recv(fd_, buffer.data(),
                                     std::min(buffer.size(), limit - data.size()), MSG_DONTWAIT);
            if (n > 0) {
                data.append(buffer.data(), static_cast<size_t>(n));
                continue;
            }
            if (n == 0) {
                how = "EOF";
                break;
            }
            if (errno == EAGAIN || errno == EINTR) continue;
            how = errno == ECONNRESET ? "reset" : std::string("error: ") + std::strerror(errno);
            break;
        }
        return data;
    }
    std::string read_exact(size_t n) const {
        std::string how;
        return read(n, how);
    }
    std::string read_to_end(std::string& how) const { return read(std::string::npos, how); }
    // Waits for the first byte to read, without reading it: false on EOF (a TCP health
    // check's connection), an error, or kPatience.
    bool wait_for_data() const {
        char byte = 0;
        for (;;) {
            if (!wait(POLLIN)) return false;
            const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n > 0) return true;
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) return false;
        }
    }
    // Whether the target this end belongs to is stopping.
    bool stopping() const { return server_ != nullptr && server_->stopping(); }
    void shut_write() const { ::shutdown(fd_, SHUT_WR); }
    // Makes the socket's close send a reset (SO_LINGER 0).
    void reset_on_close() const {
        const linger reset{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }

protected:
    int fd_;

private:
    // Until `fd_` is ready for `events` (or failed: the next call says how); false when the
    // wait gave up.
    bool wait(short events) const {
        const auto deadline = Clock::now() + kPatience;
        for (;;) {
            pollfd p{fd_, events, 0};
            if (::poll(&p, 1, 100) != 0) return true;
            if (stopping() || Clock::now() >= deadline) return false;
        }
    }

    const LoopbackServer* server_;
};

// A client connected to sluice (blocking connect; every later wait bounded by End).
class Client : public End {
public:
    explicit Client(uint16_t port) : End(connect_loopback(port)) {
        sockaddr_in local{};
        socklen_t length = sizeof local;
        if (fd_ >= 0 && ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &length) == 0)
            local_port_ = ntohs(local.sin_port);
    }
    ~Client() { close(); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    bool connected() const { return fd_ >= 0; }
    uint16_t local_port() const { return local_port_; }
    // Ends the connection with a reset.
    void reset() {
        reset_on_close();
        close();
    }

private:
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    uint16_t local_port_ = 0;
};

// What one of a target's connections saw: the bytes it read and how its reading ended.
struct Seen {
    std::string data;
    std::string how;
};

// A TCP target inside the test process whose every connection runs `script` on a thread of
// its own (the socket is closed after it). The script reports what the connection saw; one
// that carried no byte (the health checker's TCP connect) reports nothing.
class Target {
public:
    using Script = std::function<void(Target& self, const End& end)>;
    explicit Target(Script script) : script_(std::move(script)) {}
    Target(const Target&) = delete;
    Target& operator=(const Target&) = delete;

    uint16_t port() const { return server_.port(); }
    void report(Seen seen) {
        std::lock_guard lock(mutex_);
        seen_.push_back(std::move(seen));
    }
    // The first report that `wanted` accepts, once there is one (any report by default);
    // how = "no report" if none came within kPatience.
    Seen first_report(const std::function<bool(const Seen&)>& wanted = nullptr) const {
        Seen seen{"", "no report"};
        wait_until(
            [&] {
                std::lock_guard lock(mutex_);
                for (const Seen& s : seen_) {
                    if (wanted && !wanted(s)) continue;
                    seen = s;
                    return true;
                }
                return false;
            },
            kPatience);
        return seen;
    }

private:
    Script script_;
    mutable std::mutex mutex_;
    std::vector<Seen> seen_;
    // Last: destroyed first (stops and joins every script) while the members above exist.
    LoopbackServer server_{128, "kernel relay test target",
                           [this](int fd) { script_(*this, End(fd, &server_)); }};
};

// A target script: reads the client to its end and reports it, then closes.
void read_to_end_and_report(Target& self, const End& end) {
    Seen seen;
    seen.data = end.read_to_end(seen.how);
    if (!seen.data.empty()) self.report(std::move(seen));
}

// The ids of the SOCKHASH maps that process `pid` holds a descriptor of (its fdinfo).
std::vector<uint32_t> sockhash_ids(pid_t pid) {
    std::vector<uint32_t> ids;
    std::error_code ec;
    for (const auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fdinfo", ec)) {
        std::istringstream in(read_file(entry.path().string()));
        std::string line;
        long type = -1;
        long id = -1;
        while (std::getline(in, line)) {
            if (line.rfind("map_type:", 0) == 0) type = std::strtol(line.c_str() + 9, nullptr, 10);
            if (line.rfind("map_id:", 0) == 0) id = std::strtol(line.c_str() + 7, nullptr, 10);
        }
        if (type == BPF_MAP_TYPE_SOCKHASH && id > 0) ids.push_back(static_cast<uint32_t>(id));
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

// The keys in the map with `id` (its keys are socket cookies); -1 if it cannot be opened.
long count_keys(uint32_t id) {
    const int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0) return -1;
    uint64_t key = 0;
    uint64_t next = 0;
    long keys = 0;
    // Bounded: a key deleted under the walk restarts it from the first.
    for (const void* previous = nullptr; keys < 1'000'000; previous = &key) {
        if (bpf_map_get_next_key(fd, previous, &next) != 0) break;
        key = next;
        ++keys;
    }
    ::close(fd);
    return keys;
}

// The pid in the last "started worker process PID" line of `log`, or -1.
pid_t last_worker(const std::string& log) {
    const std::string needle = "started worker process ";
    const auto at = log.rfind(needle);
    return at == std::string::npos ? -1 : std::stoi(log.substr(at + needle.size()));
}

// The real user id of process `pid` (its /proc status), or -1.
long real_uid(pid_t pid) {
    std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("Uid:", 0) == 0) return std::strtol(line.c_str() + 4, nullptr, 10);
    return -1;
}

class KernelRelayTest : public SluiceTest {
protected:
    void SetUp() override {
        if (!kernel_relay_loads())
            GTEST_SKIP() << "the kernel relay cannot load here (it needs root and sockmap)";
    }

    // Starts sluice with one worker in front of the target on `port` alone, relaying as
    // `relay` says, with `more` top-level keys; waits until the target is UP.
    void start_in_front_of(uint16_t port, const std::string& relay, const std::string& more = "") {
        extra_top_ = "relay = \"" + relay + "\"\n" + more;
        extra_targets_ = "\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(port) + "\"\n";
        config_path_ = dir_.write("sluice.toml", config_text());
        launch_sluice(1);
        if (HasFatalFailure()) return;
        ASSERT_TRUE(wait_until([&] { return log_count("Healthy targets: 1") > 0; }, kPatience))
            << sluice_->log();
    }

    // sluice's conn line for the client on `client_port`, once logged ("" if it is not
    // within kPatience).
    std::string conn_line(uint16_t client_port) const {
        const std::string needle = " conn client=127.0.0.1:" + std::to_string(client_port) + " ";
        std::string line;
        wait_until(
            [&] {
                const std::string log = sluice_->log();
                const auto at = log.find(needle);
                if (at == std::string::npos) return false;
                line = log.substr(at, log.find('\n', at) - at);
                return true;
            },
            kPatience);
        return line;
    }

    // Entries in each SOCKHASH map the sluice master holds (the kernel relay's two).
    std::vector<long> map_entries() const {
        std::vector<long> counts;
        for (const uint32_t id : sockhash_ids(sluice_->pid())) counts.push_back(count_keys(id));
        return counts;
    }
    // Waits until each of the kernel relay's two maps holds `n` entries.
    ::testing::AssertionResult maps_hold(long n) const {
        std::vector<long> counts;
        if (wait_until(
                [&] {
                    counts = map_entries();
                    return counts.size() == 2 && counts[0] == n && counts[1] == n;
                },
                kPatience))
            return ::testing::AssertionSuccess();
        std::string text;
        for (const long c : counts) text += " " + std::to_string(c);
        return ::testing::AssertionFailure() << counts.size() << " SOCKHASH maps holding" << text
                                             << " entries, not " << n << " each";
    }

    // `count` connections held open through sluice to `echo`, each after one exchange.
    std::vector<std::unique_ptr<HeldConnection>> hold(int count) const {
        std::vector<std::unique_ptr<HeldConnection>> held;
        for (int i = 0; i < count; ++i) {
            std::unique_ptr<HeldConnection> one;
            wait_until(
                [&] {
                    one = std::make_unique<HeldConnection>(port_);
                    return one->echoed();
                },
                kPatience);
            held.push_back(std::move(one));
        }
        return held;
    }
    static bool all_echoed(const std::vector<std::unique_ptr<HeldConnection>>& held) {
        return std::all_of(held.begin(), held.end(), [](const auto& h) { return h->echoed(); });
    }

    static constexpr int kHeld = 3;
};

// 1. Bytes queued before the hand-over: a target that speaks first (SMTP, MySQL, Redis) and
// a client that sends the moment it connects (before sluice has connected to the target),
// 100 KiB each, both at once. Each side gets exactly the other's bytes, in order, whichever
// relay carries them: in the kernel from the first byte, or in user space first and in the
// kernel once the client speaks again ("auto"), or in user space throughout. Neither sends
// anything more (not even its FIN) before it is answered: bytes queued before the hand-over
// must go on by themselves. Once the target has the client's bytes it acknowledges them;
// the client then sends a second MiB; the target answers that with its FIN, and the client
// its FIN with its own.
class QueuedBytesTest : public KernelRelayTest, public ::testing::WithParamInterface<const char*> {
protected:
    void SetUp() override {
        if (std::string(GetParam()) == "kernel") KernelRelayTest::SetUp();
    }
};

TEST_P(QueuedBytesTest, ArriveInOrderBothWays) {
    const std::string greeting = random_bytes(100 * 1024, 1);
    const std::string upload = random_bytes(100 * 1024, 2);
    const std::string ack = "got it";
    const std::string more = random_bytes(1024 * 1024 + 5, 3);
    Target target([&](Target& self, const End& end) {
        std::thread greet([&] { end.send_all(greeting); });
        Seen seen;
        seen.data = end.read_exact(upload.size());
        greet.join();
        if (seen.data.size() != upload.size() || !end.send_all(ack)) return;
        seen.data += end.read_exact(more.size());
        end.shut_write();
        seen.data += end.read_to_end(seen.how);
        self.report(std::move(seen));
    });
    start_in_front_of(target.port(), GetParam());
    ASSERT_FALSE(HasFatalFailure());
    Client client(port_);
    ASSERT_TRUE(client.send_all(upload));  // at once: its sockets' buffers hold it all
    EXPECT_EQ(difference(client.read_exact(greeting.size() + ack.size()), greeting + ack), "");
    ASSERT_TRUE(client.send_all(more));
    std::string how;
    EXPECT_EQ(client.read_to_end(how), "");
    EXPECT_EQ(how, "EOF");
    client.shut_write();
    const Seen seen = target.first_report();
    EXPECT_EQ(seen.how, "EOF");
    EXPECT_EQ(difference(seen.data, upload + more), "");
    EXPECT_THAT(conn_line(client.local_port()),
                HasSubstr(" bytes_to_target=" + std::to_string(upload.size() + more.size()) +
                          " bytes_to_client=" + std::to_string(greeting.size() + ack.size()) +
                          " end=target_closed"))
        << sluice_->log();
}

INSTANTIATE_TEST_SUITE_P(Relays, QueuedBytesTest, ::testing::Values("kernel", "auto", "user"),
                         [](const auto& param_info) { return std::string(param_info.param); });

// 2. Half-close, client first: the client sends N bytes and shuts its write side; the target
// reads to EOF, then answers M bytes and closes.
TEST_F(KernelRelayTest, ClientHalfCloseDeliversEveryByteBothWays) {
    const std::string upload = random_bytes(300 * 1024 + 7, 3);
    const std::string answer = random_bytes(200 * 1024 + 3, 4);
    Target target([&](Target& self, const End& end) {
        Seen seen;
        seen.data = end.read_to_end(seen.how);
        if (seen.data.empty()) return;
        const bool eof = seen.how == "EOF";
        self.report(std::move(seen));
        if (eof) end.send_all(answer);
    });
    start_in_front_of(target.port(), "kernel");
    ASSERT_FALSE(HasFatalFailure());
    Client client(port_);
    ASSERT_TRUE(client.send_all(upload));
    client.shut_write();
    std::string how;
    EXPECT_EQ(difference(client.read_to_end(how), answer), "");
    EXPECT_EQ(how, "EOF");
    const Seen seen = target.first_report();
    EXPECT_EQ(seen.how, "EOF");
    EXPECT_EQ(difference(seen.data, upload), "");
    EXPECT_THAT(
        conn_line(client.local_port()),
        HasSubstr(" bytes_to_target=" + std::to_string(upload.size()) +
                  " bytes_to_client=" + std::to_string(answer.size()) + " end=client_closed"))
        << sluice_->log();
}

// The most a TCP socket's send buffer may grow to (the last of net.ipv4.tcp_wmem).
size_t max_send_buffer() {
    std::istringstream in(read_file("/proc/sys/net/ipv4/tcp_wmem"));
    size_t least = 0, initial = 0, most = 0;
    in >> least >> initial >> most;
    return most > 0 ? most : size_t{4} << 20;
}

// 2'. Half-close, target first: the target says all it has to say and shuts its write side
// while the client keeps sending, and reads the client to its EOF. The target reads nothing
// until the client's first bytes are on their way (a target slow to read, as most are under
// an upload): more than sluice's socket to the target can hold, so that the rest waits in
// the kernel relay's queue. The target shuts its side once the client has its bytes: its
// FIN is a segment of its own (no data), and reaches sluice behind bytes queued there.
TEST_F(KernelRelayTest, TargetHalfCloseKeepsTheClientSending) {
    const std::string banner = random_bytes(150 * 1024 + 1, 5);
    const std::string before = random_bytes(2 * max_send_buffer(), 6);
    const std::string after = random_bytes(1024 * 1024 + 9, 7);
    std::atomic<bool> before_sent{false};
    std::atomic<bool> banner_read{false};
    Target target([&](Target& self, const End& end) {
        if (!end.wait_for_data()) return;
        wait_until([&] { return before_sent.load() || end.stopping(); }, kPatience);
        if (!end.send_all(banner)) return;
        wait_until([&] { return banner_read.load() || end.stopping(); }, kPatience);
        end.shut_write();
        read_to_end_and_report(self, end);
    });
    start_in_front_of(target.port(), "kernel");
    ASSERT_FALSE(HasFatalFailure());
    Client client(port_);
    ASSERT_TRUE(client.connected());
    std::thread send_before([&] { before_sent = client.send_all(before); });
    EXPECT_EQ(difference(client.read_exact(banner.size()), banner), "");
    banner_read = true;
    std::string how;
    EXPECT_EQ(client.read_to_end(how), "");
    EXPECT_EQ(how, "EOF");
    send_before.join();
    ASSERT_TRUE(before_sent);
    ASSERT_TRUE(client.send_all(after));  // after the target's EOF
    client.shut_write();
    const Seen seen = target.first_report();
    EXPECT_EQ(seen.how, "EOF");
    EXPECT_EQ(difference(seen.data, before + after), "");
    EXPECT_THAT(
        conn_line(client.local_port()),
        HasSubstr(" bytes_to_target=" + std::to_string(before.size() + after.size()) +
                  " bytes_to_client=" + std::to_string(banner.size()) + " end=target_closed"))
        << sluice_->log();
}

// 3. A target that resets mid-stream gives the client a reset, not an EOF that would pass
// for a complete answer.
TEST_F(KernelRelayTest, ATargetResetReachesTheClient) {
    const std::string part = random_bytes(64 * 1024, 8);
    Target target([&](Target& self, const End& end) {
        const std::string request = end.read_exact(3);
        if (request.size() != 3 || !end.send_all(part)) return;
        self.report({request + end.read_exact(2), "read"});
        end.reset_on_close();  // the server closes the socket when this returns
    });
    start_in_front_of(target.port(), "kernel");
    ASSERT_FALSE(HasFatalFailure());
    Client client(port_);
    ASSERT_TRUE(client.send_all("req"));
    EXPECT_EQ(difference(client.read_exact(part.size()), part), "");
    ASSERT_TRUE(client.send_all("ok"));
    std::string how;
    EXPECT_EQ(client.read_to_end(how), "");
    EXPECT_EQ(how, "reset");
    EXPECT_EQ(target.first_report().data, "reqok");
    EXPECT_THAT(conn_line(client.local_port()),
                HasSubstr(" bytes_to_target=5 bytes_to_client=65536 end=error"))
        << sluice_->log();
}

// 3'. A client that resets gives the target a reset.
TEST_F(KernelRelayTest, AClientResetReachesTheTarget) {
    const std::string part = random_bytes(64 * 1024, 9);
    Target target([&](Target& self, const End& end) {
        const std::string request = end.read_exact(3);
        if (request.size() != 3 || !end.send_all(part)) return;
        Seen seen;
        seen.data = request + end.read_to_end(seen.how);
        self.report(std::move(seen));
    });
    start_in_front_of(target.port(), "kernel");
    ASSERT_FALSE(HasFatalFailure());
    Client client(port_);
    ASSERT_TRUE(client.send_all("req"));
    EXPECT_EQ(difference(client.read_exact(part.size()), part), "");
    client.reset();
    const Seen seen = target.first_report();
    EXPECT_EQ(seen.data, "req");
    EXPECT_EQ(seen.how, "reset");
    EXPECT_THAT(conn_line(client.local_port()),
                HasSubstr(" bytes_to_target=3 bytes_to_client=65536 end=error"))
        << sluice_->log();
}

// 4. The idle timeout still cuts a connection the kernel relays: both sides get a reset.
TEST_F(KernelRelayTest, IdleTimeoutCutsAQuietConnection) {
    Target target(read_to_end_and_report);
    start_in_front_of(target.port(), "kernel", "idle_timeout = \"300ms\"\n");
    ASSERT_FALSE(HasFatalFailure());
    Client client(port_);
    ASSERT_TRUE(client.send_all("hello"));
    std::string how;
    EXPECT_EQ(client.read_to_end(how), "");
    EXPECT_EQ(how, "reset");
    const Seen seen = target.first_report();
    EXPECT_EQ(seen.data, "hello");
    EXPECT_EQ(seen.how, "reset");
    EXPECT_THAT(conn_line(client.local_port()),
                HasSubstr(" bytes_to_target=5 bytes_to_client=0 end=timeout"))
        << sluice_->log();
}

// 4'. ...but not one that trickles a byte every 100 ms, one way only (the target never
// answers), for a second: more than three idle timeouts in all, never one without a byte.
// A trickle that the machine held up (two bytes sent 250 ms or more apart: the test's own
// thread was not run in time) proves nothing, and is tried again on a new connection.
TEST_F(KernelRelayTest, IdleTimeoutSparesATrickle) {
    Target target(read_to_end_and_report);
    start_in_front_of(target.port(), "kernel", "idle_timeout = \"300ms\"\n");
    ASSERT_FALSE(HasFatalFailure());
    constexpr int kBytes = 11;
    constexpr auto kHeldUp = 250ms;
    for (char attempt = 'a'; attempt < 'f'; ++attempt) {
        Client client(port_);
        const std::string byte(1, attempt);
        // The longest time from the start of one send to the end of the next: the bytes
        // reached sluice at most this far apart.
        Clock::duration longest{};
        bool sent = true;
        auto previous = Clock::now();
        for (int i = 0; i < kBytes && sent; ++i) {
            if (i > 0) std::this_thread::sleep_for(100ms);  // the trickle's pace, not a wait
            const auto start = Clock::now();
            sent = client.send_all(byte);
            if (i > 0) longest = std::max(longest, Clock::now() - previous);
            previous = start;
        }
        if (longest >= kHeldUp) continue;
        ASSERT_TRUE(sent) << "cut while trickling: " << sluice_->log();
        client.shut_write();
        std::string how;
        EXPECT_EQ(client.read_to_end(how), "");
        EXPECT_EQ(how, "EOF");
        const Seen seen = target.first_report([&](const Seen& s) { return s.data[0] == attempt; });
        EXPECT_EQ(seen.data, std::string(kBytes, attempt));
        EXPECT_EQ(seen.how, "EOF");
        EXPECT_THAT(conn_line(client.local_port()),
                    HasSubstr(" bytes_to_target=11 bytes_to_client=0 end=client_closed"))
            << sluice_->log();
        return;
    }
    GTEST_SKIP() << "the machine held every trickle up for " << kHeldUp.count() << " ms or more";
}

// 5. The maps hold a connection's two sockets (each in both maps) while it lasts, and
// nothing once it has ended normally.
TEST_F(KernelRelayTest, MapsHoldEntriesOnlyWhileConnectionsLast) {
    EchoServer echo;
    start_in_front_of(echo.port(), "kernel");
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_TRUE(maps_hold(0));
    auto held = hold(kHeld);
    ASSERT_TRUE(all_echoed(held)) << sluice_->log();
    EXPECT_TRUE(maps_hold(2 * kHeld));
    for (const auto& h : held) EXPECT_EQ(h->finish(), "EOF");
    EXPECT_TRUE(maps_hold(0));
}

// 5'. A worker killed while it holds connections leaves no entries (closing a socket takes
// it out of the maps), and its clients are not left hanging.
TEST_F(KernelRelayTest, AKilledWorkerLeavesNoEntries) {
    EchoServer echo;
    start_in_front_of(echo.port(), "kernel");
    ASSERT_FALSE(HasFatalFailure());
    auto held = hold(kHeld);
    ASSERT_TRUE(all_echoed(held)) << sluice_->log();
    ASSERT_TRUE(maps_hold(2 * kHeld));
    pid_t worker = -1;
    ASSERT_TRUE(wait_until([&] { return (worker = last_worker(sluice_->log())) > 0; }, kPatience))
        << sluice_->log();
    ASSERT_EQ(::kill(worker, SIGKILL), 0);
    for (const auto& h : held) EXPECT_THAT(h->how_it_ends(), AnyOf("EOF", "reset"));
    EXPECT_TRUE(maps_hold(0));
    // Its successor relays in the kernel as it did.
    ASSERT_TRUE(wait_until([&] { return last_worker(sluice_->log()) != worker; }, kPatience));
    auto again = hold(1);
    ASSERT_TRUE(all_echoed(again)) << sluice_->log();
    EXPECT_TRUE(maps_hold(2));
    EXPECT_EQ(again[0]->finish(), "EOF");
    EXPECT_TRUE(maps_hold(0));
}

// 5''. After a reload, the old generation's connections go on in the kernel until they end;
// then nothing is left of them.
TEST_F(KernelRelayTest, ConnectionsDrainedAfterAReloadLeaveNoEntries) {
    EchoServer echo;
    start_in_front_of(echo.port(), "kernel");
    ASSERT_FALSE(HasFatalFailure());
    auto held = hold(kHeld);
    ASSERT_TRUE(all_echoed(held)) << sluice_->log();
    ASSERT_TRUE(maps_hold(2 * kHeld));
    reload(config_text());
    EXPECT_TRUE(maps_hold(2 * kHeld));  // the old worker still relays them
    for (const auto& h : held) EXPECT_EQ(h->finish(), "EOF");
    EXPECT_TRUE(maps_hold(0));
    EXPECT_TRUE(wait_until([&] { return log_count("generation 1 has finished") == 1; }, kPatience))
        << sluice_->log();
}

// 5'''. Connections still open at drain_timeout are cut (a reset to each client) and leave
// no entries.
TEST_F(KernelRelayTest, ConnectionsCutAtDrainTimeoutLeaveNoEntries) {
    EchoServer echo;
    start_in_front_of(echo.port(), "kernel", "drain_timeout = \"300ms\"\n");
    ASSERT_FALSE(HasFatalFailure());
    auto held = hold(kHeld);
    ASSERT_TRUE(all_echoed(held)) << sluice_->log();
    ASSERT_TRUE(maps_hold(2 * kHeld));
    reload(config_text());
    for (const auto& h : held) EXPECT_EQ(h->how_it_ends(), "reset");
    EXPECT_TRUE(maps_hold(0));
    EXPECT_TRUE(wait_until([&] { return log_count(" end=drain_timeout") >= kHeld; }, kPatience));
    EXPECT_EQ(log_count(" end=drain_timeout"), kHeld) << sluice_->log();
}

// 6. A worker that switched to `user` (no capability left) still relays in the kernel: the
// maps were created by the root master, and updating them needs only their descriptors.
TEST_F(KernelRelayTest, AWorkerWithoutPrivilegesStillRelaysInTheKernel) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch the workers to nobody";
    EchoServer echo;
    start_in_front_of(echo.port(), "kernel", "user = \"nobody\"\n");
    ASSERT_FALSE(HasFatalFailure());
    pid_t worker = -1;
    ASSERT_TRUE(wait_until([&] { return (worker = last_worker(sluice_->log())) > 0; }, kPatience))
        << sluice_->log();
    EXPECT_TRUE(wait_until([&] { return real_uid(worker) == 65534; }, kPatience))
        << real_uid(worker);
    auto held = hold(1);
    ASSERT_TRUE(all_echoed(held)) << sluice_->log();
    EXPECT_TRUE(maps_hold(2));
    EXPECT_EQ(held[0]->finish(), "EOF");
    EXPECT_THAT(conn_line(held[0]->local_port()),
                HasSubstr(" bytes_to_target=5 bytes_to_client=5 end=client_closed"))
        << sluice_->log();
    EXPECT_TRUE(maps_hold(0));
}

// 7. sluice run without root (so without CAP_BPF and CAP_NET_ADMIN): "auto" falls back to the
// user relay and says why; "kernel" refuses to start, and so does its config check. Needs
// no kernel relay, only root to run sluice as nobody.
class KernelRelayFallbackTest : public SluiceTest {
protected:
    void SetUp() override {}  // runs whether or not the kernel relay loads here
    // Runs sluice as nobody from now on (its config dir readable by nobody).
    void unprivileged() {
        ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
        wrapper_ = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    }
};

TEST_F(KernelRelayFallbackTest, AutoFallsBackToTheUserRelayWithoutCapabilities) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run sluice as nobody (setpriv)";
    unprivileged();
    start_backends(1);
    extra_top_ = "relay = \"auto\"\n";
    start_sluice(1);
    ASSERT_FALSE(HasFatalFailure());
    const std::string log = sluice_->log();
    const auto at = log.find(" listening on ");
    ASSERT_NE(at, std::string::npos) << log;
    EXPECT_THAT(log.substr(at, log.find('\n', at) - at),
                HasSubstr("; relay: user (kernel relay unavailable: "));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(get().status, 200) << "request " << i;
}

TEST_F(KernelRelayFallbackTest, KernelRefusesToStartWithoutCapabilities) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run sluice as nobody (setpriv)";
    unprivileged();
    extra_top_ = "relay = \"kernel\"\n";
    extra_targets_ = "\n[[targets]]\naddress = \"127.0.0.1:1\"\n";
    config_path_ = dir_.write("sluice.toml", config_text());
    std::vector<std::string> argv = wrapper_;
    for (const std::string& arg : {std::string(SLUICE_BIN), std::string("--config"), config_path_,
                                   std::string("--workers"), std::string("1")})
        argv.push_back(arg);
    sluice_ = std::make_unique<Process>(argv, dir_.path() + "/sluice.log");
    const int status = sluice_->wait_exit(kPatience);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << sluice_->log();
    EXPECT_THAT(sluice_->log(),
                HasSubstr("relay = \"kernel\", but the kernel relay cannot be used: "));
    EXPECT_EQ(log_count(" listening on "), 0) << sluice_->log();
    sluice_.reset();  // exited and reaped: nothing for TearDown to stop

    argv = wrapper_;
    for (const std::string& arg :
         {std::string(SLUICE_BIN), std::string("--check"), std::string("--config"), config_path_})
        argv.push_back(arg);
    const CommandResult check = run_command(argv);
    EXPECT_EQ(check.exit_code, 1) << check.output;
    EXPECT_THAT(check.output, HasSubstr("kernel relay cannot be used"));
}

}  // namespace
}  // namespace sluice::test
