// Hostile clients and faulty targets. Each test checks that sluice keeps serving the other
// clients, that no process crashed (the master's children are the same pids), and that
// afterwards its file descriptors and threads come back to their baseline (read in /proc).
//
// Baseline: descriptors (master and children together) exactly as before. Threads: the
// master and the health checker no more than before; a worker may keep up to 16 idle pool
// threads after a peak (docs/ARCHITECTURE.md), so at most max(before, 1 + 16 + 4).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "scripted_server.hpp"
#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

using Clock = std::chrono::steady_clock;

// A worker's main thread, max_idle pool threads, a sanitizer's own thread and a race or two.
constexpr long kWorkerThreadCeiling = 1 + 16 + 4;

// utime + stime of a process (all its threads), in seconds.
double cpu_seconds(pid_t pid) {
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    std::istringstream in(stat.substr(stat.rfind(')') + 2));
    std::string field;
    long ticks = 0;
    for (int i = 3; i <= 15 && in >> field; ++i)
        if (i >= 14) ticks += std::stol(field);
    return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct Usage {
    std::vector<pid_t> children;  // sorted
    std::map<pid_t, long> threads;
    std::map<pid_t, long> fds;
    long total_fds() const {
        long n = 0;
        for (const auto& [pid, count] : fds) n += count;
        return n;
    }
    std::string describe() const {
        std::ostringstream out;
        for (const auto& [pid, count] : fds)
            out << "pid " << pid << ": " << count << " fds, " << threads.at(pid) << " threads; ";
        return out.str();
    }
};

Usage usage_of(pid_t master) {
    Usage u;
    u.children = children_of(master);
    std::sort(u.children.begin(), u.children.end());
    std::vector<pid_t> all = u.children;
    all.push_back(master);
    for (pid_t pid : all) {
        u.fds[pid] = count_fds(pid);
        u.threads[pid] = threads_of(pid);
    }
    return u;
}

bool send_text(int fd, const std::string& text) {
    return ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

void close_with_reset(int fd) {
    const linger abort_on_close{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
    ::close(fd);
}

// Reads one HTTP reply with a Content-Length (keep-alive) within `timeout`; "" if none.
std::string read_reply(int fd, std::chrono::milliseconds timeout) {
    std::string data;
    const auto deadline = Clock::now() + timeout;
    char buffer[4096];
    while (Clock::now() < deadline) {
        const auto head_end = data.find("\r\n\r\n");
        if (head_end != std::string::npos) {
            const auto at = data.find("Content-Length: ");
            const size_t length = at == std::string::npos ? 0 : std::stoul(data.substr(at + 16));
            if (data.size() >= head_end + 4 + length) return data;
        }
        pollfd p{fd, POLLIN, 0};
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0))) <= 0) break;
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        data.append(buffer, static_cast<size_t>(n));
    }
    return "";
}

// How a connection ended, from the client's side.
struct Ending {
    std::string data;
    bool eof = false;
    bool reset = false;
    bool timed_out = false;
    std::chrono::milliseconds elapsed{0};  // from the request sent to the end
};

// Sends `request` and reads until EOF, a reset or `timeout`.
Ending until_end(int fd, const std::string& request, std::chrono::milliseconds timeout) {
    Ending end;
    const auto sent = Clock::now();
    if (!send_text(fd, request)) {
        end.reset = true;
        return end;
    }
    char buffer[16384];
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(sent + timeout - Clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
            end.timed_out = true;
            break;
        }
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n > 0) {
            end.data.append(buffer, static_cast<size_t>(n));
        } else if (n == 0) {
            end.eof = true;
            break;
        } else if (errno != EAGAIN && errno != EINTR) {
            end.reset = errno == ECONNRESET;
            if (!end.reset) end.timed_out = true;
            break;
        }
    }
    end.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - sent);
    return end;
}

// The lines of `log` that contain `needle`, for failure messages.
std::string lines_with(const std::string& log, const std::string& needle, size_t max = 10) {
    std::string out;
    size_t found = 0;
    for (size_t at = log.find(needle); at != std::string::npos && found < max;
         at = log.find(needle, at + 1), ++found) {
        const auto start = log.rfind('\n', at);
        const auto begin = start == std::string::npos ? 0 : start + 1;
        out += log.substr(begin, log.find('\n', at) - begin) + "\n";
    }
    return out;
}

std::string request_for(const std::string& path) {
    return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
}

// Back-to-back GETs, 10 s per request instead of the default 3: the machines these run on are
// shared, and a request that a loaded machine serves in 4 s is still served. What this load
// must show is that no request of another client is lost or refused while sluice is under
// attack.
constexpr auto kSteadyLoadRequest = 10s;

class HostileTest : public SluiceTest {
protected:
    // The health checker's pid: the last one the master started.
    pid_t checker_pid() const {
        const std::string log = sluice_->log();
        const std::string needle = "started health process ";
        const auto at = log.rfind(needle);
        return at == std::string::npos ? -1 : std::stoi(log.substr(at + needle.size()));
    }

    // Starts `count` spells-api backends, listed with lenient health checks: a TCP check
    // (the kernel completes the handshake, so it does not wait for the backend's threads to
    // be scheduled), timeout 2 s, fall 3. Under a flood on a loaded 2-core machine (a
    // sanitizer build beside a parallel build), three /healthz replies in a row took over
    // 2 s, and a target taken DOWN by its own slowness is not what these tests are about.
    void start_lenient_backends(int count) {
        start_backends(count);
        for (Backend& backend : backends_) {
            backend.in_config = false;
            extra_targets_ +=
                "\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(backend.port) +
                "\"\nhealth_check = { timeout = \"2s\", fall = 3 }\n";
        }
    }

    // The baseline, idle, once the master has its `workers` workers and its checker running:
    // the fewest descriptors seen over a bit more than one health interval, so that a probe
    // socket the checker holds for a moment is not taken for the baseline, and the most
    // threads (the checker's are all there; a worker's only need to stay under the ceiling).
    Usage baseline(size_t workers) {
        EXPECT_TRUE(wait_until([&] { return children_of(sluice_->pid()).size() == workers + 1; },
                               kPatience))
            << "expected " << workers << " workers and a checker";
        // The checker runs one thread per target besides its main thread.
        const std::string config = read_file(config_path_);
        long targets = 0;
        for (size_t at = config.find("[[targets]]"); at != std::string::npos;
             at = config.find("[[targets]]", at + 1))
            ++targets;
        EXPECT_TRUE(
            wait_until([&] { return threads_of(checker_pid()) >= 1 + targets; }, kPatience));
        Usage low = usage_of(sluice_->pid());
        const auto until = Clock::now() + kHealthInterval + 100ms;
        while (Clock::now() < until) {
            std::this_thread::sleep_for(10ms);
            const Usage now = usage_of(sluice_->pid());
            if (now.children != low.children) continue;
            for (auto& [pid, n] : low.fds) n = std::min(n, now.fds.at(pid));
            for (auto& [pid, n] : low.threads) n = std::max(n, now.threads.at(pid));
        }
        std::cout << "[ measure  ] baseline: " << low.describe() << "\n";
        return low;
    }

    bool back_to(const Usage& base, const Usage& now, std::string& why) const {
        if (now.children != base.children) {
            why = "the children changed (a crash or a restart)";
            return false;
        }
        if (now.total_fds() != base.total_fds()) {
            why = "descriptors: " + std::to_string(now.total_fds()) + " instead of " +
                  std::to_string(base.total_fds());
            return false;
        }
        const pid_t checker = checker_pid();
        for (const auto& [pid, before] : base.threads) {
            const long limit = pid == sluice_->pid() || pid == checker
                                   ? before
                                   : std::max(before, kWorkerThreadCeiling);
            if (now.threads.at(pid) > limit) {
                why = "pid " + std::to_string(pid) + " has " + std::to_string(now.threads.at(pid)) +
                      " threads (at most " + std::to_string(limit) + " expected)";
                return false;
            }
        }
        return true;
    }

    // Requests of the load (64 bytes) that a target did not answer within idle_timeout: on a
    // loaded machine spells-api can take that long, and then the cut is what was configured.
    int load_cut_by_idle_timeout() const {
        return log_count("bytes_to_target=64 bytes_to_client=0 end=timeout");
    }

    // The load is still being served (a few more replies), and nothing it sent failed,
    // except requests cut by a short idle_timeout because the target was slow.
    void expect_load_served(LoadGenerator& load) {
        const long before = load.ok();
        EXPECT_TRUE(wait_until([&] { return load.ok() >= before + 5; }, 20s))
            << "the other clients are no longer served";
        load.stop();
        EXPECT_LE(load.failed(), load_cut_by_idle_timeout())
            << "failures beyond those a slow target explains under idle_timeout: "
            << load.last_failure() << "\n"
            << lines_with(sluice_->log(), "DOWN") << lines_with(sluice_->log(), "end=refused_all")
            << lines_with(sluice_->log(), "end=timeout")
            << lines_with(sluice_->log(), "end=no_target")
            << lines_with(sluice_->log(), "bytes_to_client=0 end=error");
    }

    void expect_back_to_baseline(const Usage& base) {
        std::string why;
        Usage now;
        const bool back = wait_until(
            [&] {
                now = usage_of(sluice_->pid());
                return back_to(base, now, why);
            },
            20s);
        EXPECT_TRUE(back) << why << "\nbefore: " << base.describe()
                          << "\nafter:  " << now.describe();
        if (back) std::cout << "[ measure  ] back to baseline: " << now.describe() << "\n";
    }
};

// a) max_connections = 4 with one worker: the 5th connection waits in the kernel's queue
//    while 4 are held, and is served as soon as one of them closes.
TEST_F(HostileTest, ConnectionsBeyondMaxConnectionsWaitUntilASlotFrees) {
    extra_top_ = "max_connections = 4\n";
    start_lenient_backends(2);
    start_sluice(1);
    const Usage base = baseline(1);

    // Four keep-alive connections, each with a reply read, then held open.
    std::vector<int> held;
    for (int i = 0; i < 4; ++i) {
        const int fd = connect_loopback(port_, 3s);
        ASSERT_GE(fd, 0);
        held.push_back(fd);
        ASSERT_TRUE(send_text(fd, "GET /api/spells HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
        const std::string reply = read_reply(fd, 10s);
        ASSERT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << "held connection " << i << ": " << reply;
    }

    // The 5th: the kernel completes its handshake (the listen queue), but no worker thread
    // takes it. Proving absence needs a bounded wait; 300 ms is 60 times what a served
    // request takes here (about 5 ms), and a short wait can only make this check pass
    // wrongly, never fail wrongly.
    const int fifth = connect_loopback(port_, 3s);
    ASSERT_GE(fifth, 0);
    ASSERT_TRUE(send_text(fifth, request_for("/api/spells")));
    pollfd p{fifth, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 300), 0) << "the 5th connection was served while 4 were held";

    // One held connection closes: its slot goes to the 5th at once.
    ::close(held.front());
    held.erase(held.begin());
    const auto freed = Clock::now();
    const std::string reply = read_reply(fifth, 10s);
    EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << "the 5th was not served after a slot freed";
    std::cout << "[ measure  ] max_connections: the 5th was served "
              << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - freed).count()
              << " ms after a slot freed\n";
    ::close(fifth);

    // Still at most 4: a new 5th waits again behind the 3 held plus one more.
    const int fourth = connect_loopback(port_, 3s);
    ASSERT_GE(fourth, 0);
    ASSERT_TRUE(send_text(fourth, "GET /api/spells HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    EXPECT_EQ(read_reply(fourth, 10s).rfind("HTTP/1.1 200", 0), 0u);
    held.push_back(fourth);
    const int again = connect_loopback(port_, 3s);
    ASSERT_GE(again, 0);
    ASSERT_TRUE(send_text(again, request_for("/api/spells")));
    p = {again, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 300), 0) << "served beyond max_connections";

    for (int fd : held) ::close(fd);
    EXPECT_EQ(read_reply(again, 10s).rfind("HTTP/1.1 200", 0), 0u);
    ::close(again);
    EXPECT_EQ(get().status, 200);
    expect_back_to_baseline(base);
}

// b) A client that goes silent after half a request is cut after idle_timeout (both sides
//    reset) and logged as end=timeout; one that sends a byte every 200 ms for 3 s is not cut,
//    as bytes keep moving. Others are served throughout.
TEST_F(HostileTest, SilentClientIsCutAfterIdleTimeout) {
    extra_top_ = "idle_timeout = \"1s\"\n";
    start_lenient_backends(2);
    start_sluice(2);
    const Usage base = baseline(2);
    LoadGenerator load(port_, 2, kSteadyLoadRequest);

    // The trickler runs alongside: 15 bytes of a header, one every 200 ms (3 s in all).
    std::string trickled_reply;
    std::thread trickler([&] {
        const int fd = connect_loopback(port_, 3s);
        if (fd < 0) return;
        send_text(fd, "GET /api/spells HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
        for (int i = 0; i < 15; ++i) {
            std::this_thread::sleep_for(200ms);  // the client's own pace
            if (!send_text(fd, "a")) break;
        }
        send_text(fd, "\r\nConnection: close\r\n\r\n");
        trickled_reply = read_reply(fd, 10s);
        ::close(fd);
    });

    int cut = 0;
    for (int i = 0; i < 3; ++i) {
        const int fd = connect_loopback(port_, 5s);
        ASSERT_GE(fd, 0);
        const Ending end = until_end(fd, "GET /api/spells HTTP/1.1\r\nHost: 127.", 15s);
        ::close(fd);
        EXPECT_FALSE(end.timed_out) << "a silent client was not cut within 15 s";
        EXPECT_TRUE(end.data.empty()) << end.data;
        // The margin is wide for a loaded 2-core machine; without the timeout the client
        // would wait for its 15 s deadline.
        EXPECT_GE(end.elapsed, 950ms) << "cut before idle_timeout";
        EXPECT_LE(end.elapsed, 10s) << "cut long after idle_timeout (1 s)";
        std::cout << "[ measure  ] silent client cut after " << end.elapsed.count() << " ms ("
                  << (end.reset ? "reset"
                      : end.eof ? "EOF"
                                : "?")
                  << ")\n";
        if (!end.timed_out) ++cut;
    }
    trickler.join();
    EXPECT_EQ(trickled_reply.rfind("HTTP/1.1 200", 0), 0u)
        << "a client sending a byte every 200 ms was cut: " << trickled_reply;
    EXPECT_TRUE(wait_until([&] { return log_count("end=timeout") >= cut; }, kPatience));
    // Both counts from one read of the log: a load request cut meanwhile changes both.
    const std::string log = sluice_->log();
    EXPECT_EQ(count_of(log, "end=timeout"),
              cut + count_of(log, "bytes_to_target=64 bytes_to_client=0 end=timeout"))
        << "only the silent clients time out";

    expect_load_served(load);
    expect_back_to_baseline(base);
}

// A target that streams a long reply, or misbehaves on cue, by path.
struct FaultyTarget {
    std::atomic<int> started{0}, ended{0};  // fault and stream handlers entered, and left
    std::map<std::string, std::atomic<int>> hits;
    std::atomic<bool> stopping{false};
    std::unique_ptr<ScriptedServer> server;  // not touched by the handlers

    static constexpr size_t kDeclaredLength = 100000;

    FaultyTarget() {
        for (const char* path : {"/stream", "/die", "/reset", "/stall"}) hits[path] = 0;
        server = std::make_unique<ScriptedServer>([this](int fd, const std::string& path) {
            const auto it = hits.find(path);
            if (it == hits.end()) {
                ScriptedServer::send_all(fd, ScriptedServer::reply(200, "ok", "faulty"));
                return;
            }
            ++started;
            ++it->second;
            const std::string head =
                "HTTP/1.1 200 OK\r\nContent-Length: " +
                std::to_string(path == "/stream" ? (1ull << 40) : kDeclaredLength) +
                "\r\nX-Instance: faulty\r\n\r\n";
            ScriptedServer::send_all(fd, head);
            if (path == "/stream") {
                stream(fd);
            } else if (path == "/die") {  // half the body, then a clean close
                ScriptedServer::send_all(fd, std::string(kDeclaredLength / 2, 'd'));
            } else if (path == "/reset") {  // half the body, then a reset
                ScriptedServer::send_all(fd, std::string(kDeclaredLength / 2, 'r'));
                const linger abort_on_close{1, 0};
                ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
            } else {  // /stall: the head, then nothing until sluice lets go
                hang(fd);
            }
            ++ended;
        });
    }

    ~FaultyTarget() {
        stopping = true;
        server.reset();  // joins the handlers, which see `stopping` within 100 ms
    }

    // Sends until a send fails (the peer is gone) or the target stops.
    void stream(int fd) const {
        const std::string chunk(16384, 's');
        for (;;) {
            pollfd p{fd, POLLOUT, 0};
            if (::poll(&p, 1, 100) == 0) {
                if (stopping) return;
                continue;
            }
            if (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
                errno != EAGAIN && errno != EINTR)
                return;
        }
    }

    // Blocks until the peer closes or resets, or the target stops.
    void hang(int fd) const {
        char byte;
        while (!stopping) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 100) > 0 && ::recv(fd, &byte, 1, 0) <= 0) return;
        }
    }

    std::string target_table() const {
        return "\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(server->port()) + "\"\n";
    }
};

// c) Clients that reset (SO_LINGER {1, 0}) while a long reply streams to them: sluice cuts
//    the target side too, logs end=error, and keeps serving.
TEST_F(HostileTest, ClientsThatResetMidStream) {
    FaultyTarget faulty;
    extra_targets_ = faulty.target_table();
    start_lenient_backends(2);
    start_sluice(2);
    const Usage base = baseline(2);
    LoadGenerator load(port_, 2, kSteadyLoadRequest);

    int resets = 0;
    const int errors_before = log_count("end=error");
    // About one connection in three reaches the stream target (round robin over three,
    // shared with the load); on a loaded machine a check may take it out for a while, so
    // allow many more attempts than 60: the loop ends at 20 resets.
    for (int attempt = 0; attempt < 400 && resets < 20; ++attempt) {
        const int before = faulty.hits.at("/stream");
        const int fd = connect_loopback(port_, 3s);
        ASSERT_GE(fd, 0);
        ASSERT_TRUE(send_text(fd, request_for("/stream")));
        // Read a quarter of a megabyte of the stream, or the short reply of another target.
        size_t received = 0;
        char buffer[16384];
        const auto deadline = Clock::now() + 3s;
        while (received < 256 * 1024 && Clock::now() < deadline) {
            const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
            if (n <= 0) break;
            received += static_cast<size_t>(n);
        }
        if (faulty.hits.at("/stream") > before) {
            EXPECT_GE(received, 256u * 1024) << "the stream stopped early";
            ++resets;
        }
        close_with_reset(fd);
    }
    EXPECT_EQ(resets, 20);
    // Every stream's target side was cut by sluice: each handler saw its send fail.
    EXPECT_TRUE(wait_until([&] { return faulty.ended == faulty.started; }, kPatience))
        << faulty.started << " streams started, " << faulty.ended << " ended";
    EXPECT_TRUE(
        wait_until([&] { return log_count("end=error") - errors_before >= resets; }, kPatience))
        << "expected " << resets << " connections logged end=error";
    std::cout << "[ measure  ] " << resets << " clients reset mid-stream; "
              << log_count("end=error") - errors_before << " logged end=error\n";

    expect_load_served(load);
    expect_back_to_baseline(base);
}

// c) A connect flood: 4000 connections opened and closed at once (half of them with a reset)
//    while others are served.
TEST_F(HostileTest, ConnectFlood) {
    start_lenient_backends(2);
    start_sluice(2);
    const Usage base = baseline(2);
    LoadGenerator load(port_, 2, kSteadyLoadRequest);
    const int lines_before = log_count(" conn client=");

    constexpr int kThreads = 4;
    constexpr int kPerThread = 1000;
    std::atomic<int> connected{0};
    const auto started = Clock::now();
    std::vector<std::thread> flooders;
    for (int t = 0; t < kThreads; ++t) {
        flooders.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                const int fd = connect_loopback(port_, 3s);
                if (fd < 0) continue;
                ++connected;
                if ((i + t) % 2 == 0)
                    close_with_reset(fd);
                else
                    ::close(fd);
            }
        });
    }
    for (auto& t : flooders) t.join();
    const auto flood_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    EXPECT_EQ(connected, kThreads * kPerThread) << "connects refused during the flood";

    // Every flood connection is accepted and ends (one log line each).
    const bool all_logged = wait_until(
        [&] { return log_count(" conn client=") - lines_before >= connected.load(); }, 15s);
    std::cout << "[ measure  ] connect flood: " << connected << " connects in " << flood_ms
              << " ms; " << log_count(" conn client=") - lines_before
              << " connection lines logged; " << load.ok() << " requests served meanwhile\n";
    EXPECT_TRUE(all_logged);

    expect_load_served(load);
    EXPECT_EQ(get().status, 200);
    expect_back_to_baseline(base);
}

// d) File descriptor exhaustion: with 64 (or 65) open files and one worker, held connections
//    use them all up; accept() fails with EMFILE, which is logged at most once a second, the
//    worker backs off without spinning a core, and once the connections close it serves
//    again. The limit's parity is chosen so that, connections taking descriptors in pairs,
//    the last free one is asked for by accept() (an even number free). Two pool threads can
//    still interleave accept() and the target's socket() near the limit, so a connect may
//    fail with EMFILE here too: FdExhaustionNeverBlamesTheTarget checks what happens then.
class FdExhaustionTest : public HostileTest {
protected:
    // Starts sluice with `limit` open files (soft and hard: sluice raises the soft limit to
    // the hard one) and one worker; returns how many descriptors below the limit the worker
    // has free.
    long start_limited(long limit) {
        limit_ = limit;
        wrapper_ = {"/usr/bin/prlimit",
                    "--nofile=" + std::to_string(limit) + ":" + std::to_string(limit)};
        start_sluice(1);
        worker_ = worker_pid();
        if (worker_ < 0) return -1;
        // The fewest descriptors the worker holds over 300 ms: the request start_sluice()
        // made may still hold one or two for a moment.
        long used = count_fds(worker_, limit);
        const auto until = Clock::now() + 300ms;
        while (Clock::now() < until) {
            std::this_thread::sleep_for(10ms);
            used = std::min(used, count_fds(worker_, limit));
        }
        return limit - used;
    }

    pid_t worker_pid() const {
        for (pid_t pid : children_of(sluice_->pid()))
            if (pid != checker_pid()) return pid;
        return -1;
    }

    // Opens connections that send nothing (sluice still connects each to a target) and
    // holds them, one at a time, until `done` holds or `max` are open. Each next connection
    // waits until the worker holds the descriptors of the previous one (its client socket
    // and its target socket), so that near the limit only one connection is ever pending.
    void hold(int max, const std::function<bool()>& done) {
        while (static_cast<int>(held_.size()) < max && !done()) {
            const int fd = connect_loopback(port_, 3s);
            ASSERT_GE(fd, 0);
            held_.push_back(fd);
            const long want = base_fds_ + 2 * static_cast<long>(held_.size());
            wait_until([&] { return done() || count_fds(worker_) >= want; }, 5s);
        }
    }

    void release() {
        for (int fd : held_) ::close(fd);
        held_.clear();
    }

    void TearDown() override {
        release();
        HostileTest::TearDown();
    }

    long limit_ = 0;
    pid_t worker_ = -1;
    long base_fds_ = 0;
    std::vector<int> held_;
};

TEST_F(FdExhaustionTest, AcceptFailsWithEmfileBacksOffAndRecovers) {
#if defined(__SANITIZE_THREAD__)
    // The test needs an exact count of free descriptors (an odd one is taken by accept()
    // and given back after a 503, so accept() never fails); ThreadSanitizer's runtime opens
    // descriptors of its own in the worker at unpredictable times. Runs in the other builds.
    GTEST_SKIP() << "descriptor count not exact under ThreadSanitizer";
#endif
    start_lenient_backends(2);
    long free_fds = start_limited(64);
    ASSERT_GT(free_fds, 0) << sluice_->log();
    if (free_fds % 2 != 0) {  // make the last free descriptor one that accept() needs
        sluice_.reset();
        free_fds = start_limited(65);
    }
    ASSERT_EQ(free_fds % 2, 0);
    const auto accept_failed = [&] { return log_count("accept failed") > 0; };
    Usage base;
    for (int attempt = 1;; ++attempt) {
        std::cout << "[ measure  ] open-file limit " << limit_ << ": " << free_fds
                  << " descriptors free in the worker, room for " << free_fds / 2
                  << " connections\n";
        base = baseline(1);
        base_fds_ = count_fds(worker_);
        hold(static_cast<int>(free_fds / 2) + 8, accept_failed);
        if (wait_until(accept_failed, 10s) || attempt == 2) break;
        // Still accepting: on a loaded machine a descriptor was in flight while the free
        // ones were counted, so the count was odd after all and each accept() takes the last
        // descriptor and gives it back with a 503. Once more with the other parity.
        std::cout << "[ measure  ] no accept failure with " << limit_
                  << " open files: the free count was odd; trying " << limit_ + 1 << "\n";
        release();
        sluice_.reset();
        free_fds = start_limited(limit_ + 1);
        ASSERT_GT(free_fds, 0) << sluice_->log();
    }
    ASSERT_TRUE(wait_until(accept_failed, kPatience))
        << held_.size() << " connections held; the worker has " << count_fds(worker_, limit_)
        << " descriptors below " << limit_ << " (" << count_fds(worker_) << " in all) and "
        << threads_of(worker_) << " threads; warnings and errors:\n"
        << lines_with(sluice_->log(), " warn: ") << lines_with(sluice_->log(), " error: ")
        << lines_with(sluice_->log(), "end=refused_all");
    EXPECT_NE(sluice_->log().find("accept failed: Too many open files; backing off"),
              std::string::npos);

    // A measurement window while exhausted (not a synchronisation): log lines and CPU time.
    const auto window_start = Clock::now();
    const double cpu_before = cpu_seconds(worker_);
    const int lines_before = log_count("accept failed");
    std::this_thread::sleep_for(3s);
    const double wall = std::chrono::duration<double>(Clock::now() - window_start).count();
    const double cpu = cpu_seconds(worker_) - cpu_before;
    const int lines = log_count("accept failed") - lines_before;
    std::cout << "[ measure  ] exhausted for " << wall << " s: " << lines
              << " 'accept failed' lines, worker CPU " << cpu << " s (" << 100 * cpu / wall
              << " %)\n";
    EXPECT_LE(lines, static_cast<int>(wall) + 1) << "logged more than once a second";
    EXPECT_GE(lines, 1) << "still exhausted, yet not logged again";
    EXPECT_LT(cpu, 0.3 * wall) << "the worker spins while out of descriptors";
    EXPECT_TRUE(pid_alive(worker_));

    release();
    EXPECT_TRUE(wait_until([&] { return get().status == 200; }, kPatience))
        << "not served again after descriptors freed";
    expect_back_to_baseline(base);
}

// The other parity: accept() takes the last descriptor and the socket for the target then
// fails with EMFILE (two pool threads interleaving near the limit can cause that in either
// parity). That is the worker's own shortage, not the target's: the target must not be
// marked DOWN (passive health would take it out of rotation for every worker until the next
// check passes), and once the held connections close, clients are served.
TEST_F(FdExhaustionTest, FdExhaustionNeverBlamesTheTarget) {
    start_lenient_backends(2);
    long free_fds = start_limited(64);
    ASSERT_GT(free_fds, 0) << sluice_->log();
    if (free_fds % 2 == 0) {
        sluice_.reset();
        free_fds = start_limited(65);
    }
    ASSERT_EQ(free_fds % 2, 1);
    const Usage base = baseline(1);
    base_fds_ = count_fds(worker_);

    // Fill every pair, one connection at a time, until one descriptor is left; then one
    // more connection: accept() gets the last descriptor and the socket for the target fails.
    const auto full = [&] { return count_fds(worker_, limit_) >= limit_ - 1; };
    hold(static_cast<int>(free_fds / 2) + 4, full);
    ASSERT_TRUE(wait_until(full, kPatience));
    const int last = connect_loopback(port_, 3s);
    ASSERT_GE(last, 0);
    held_.push_back(last);
    // Bounded wait for sluice's answer to it: its 503 (it could not connect anywhere).
    wait_until([&] { return log_count("end=refused_all") + log_count("end=no_target") > 0; },
               kPatience);
    std::cout << "[ measure  ] open-file limit " << limit_ << ", " << free_fds
              << " descriptors free: " << log_count("end=refused_all") << " refused_all and "
              << log_count("end=no_target") << " no_target replies, "
              << log_count("seen by a worker") << " targets marked DOWN by the worker\n";
    EXPECT_EQ(log_count("seen by a worker"), 0)
        << "a target was marked DOWN because the worker ran out of descriptors";

    release();
    EXPECT_TRUE(wait_until([&] { return get().status == 200; }, kPatience));
    expect_back_to_baseline(base);
}

// e) Targets that die mid-stream (clean close), reset mid-stream, or stall after the head:
//    the client sees its connection end (EOF or reset; the stall within idle_timeout), no
//    process crashes, nothing leaks, others are served.
TEST_F(HostileTest, TargetFaultsEndTheClientConnection) {
    FaultyTarget faulty;
    extra_top_ = "idle_timeout = \"1s\"\n";
    extra_targets_ = faulty.target_table();
    start_lenient_backends(2);
    start_sluice(2);
    const Usage base = baseline(2);
    LoadGenerator load(port_, 2, kSteadyLoadRequest);

    // Sends `path` until it lands on the faulty target (round robin over 3 targets, shared
    // with the load), at most 30 times; its ending.
    const auto fault = [&](const std::string& path) {
        for (int attempt = 0; attempt < 30; ++attempt) {
            const int before = faulty.hits.at(path);
            const int fd = connect_loopback(port_, 3s);
            if (fd < 0) continue;
            const Ending end = until_end(fd, request_for(path), 15s);
            ::close(fd);
            if (faulty.hits.at(path) > before) return end;
        }
        ADD_FAILURE() << path << " never reached the faulty target";
        return Ending{};
    };

    for (int round = 0; round < 5; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        const Ending died = fault("/die");
        EXPECT_TRUE(died.eof) << "a target that closes mid-reply: the client gets EOF";
        EXPECT_NE(died.data.find("X-Instance: faulty"), std::string::npos);
        EXPECT_LT(died.data.size(), FaultyTarget::kDeclaredLength);

        const Ending reset = fault("/reset");
        EXPECT_FALSE(reset.timed_out) << "a target that resets: the client's connection ends";
        EXPECT_TRUE(reset.reset || reset.eof);
        EXPECT_LT(reset.elapsed, 10s);  // wide, for a loaded machine; else 15 s

        const Ending stalled = fault("/stall");
        EXPECT_FALSE(stalled.timed_out) << "a stalled target: cut by idle_timeout";
        EXPECT_TRUE(stalled.reset || stalled.eof);
        EXPECT_GE(stalled.elapsed, 950ms);
        EXPECT_LE(stalled.elapsed, 10s);  // wide, for a loaded machine; else 15 s
        if (round == 0)
            std::cout << "[ measure  ] die: " << died.data.size() << " bytes then "
                      << (died.eof ? "EOF" : "reset")
                      << "; reset: " << (reset.reset ? "reset" : "EOF") << " after "
                      << reset.elapsed.count()
                      << " ms; stall: " << (stalled.reset ? "reset" : "EOF") << " after "
                      << stalled.elapsed.count() << " ms\n";
    }
    EXPECT_TRUE(wait_until([&] { return faulty.ended == faulty.started; }, kPatience))
        << "a faulty target's connection was left open: " << faulty.started << " started, "
        << faulty.ended << " ended";
    EXPECT_GE(log_count("end=timeout"), 5);

    expect_load_served(load);
    expect_back_to_baseline(base);
}

}  // namespace
}  // namespace sluice::test
