// Hitless operations: reload under load, health kept across reloads, respawn after a crash,
// graceful shutdown.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <set>
#include <thread>

#include "scripted_server.hpp"
#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// The pids among `now` that are not in `before`.
std::vector<pid_t> new_pids(const std::vector<pid_t>& before, const std::vector<pid_t>& now) {
    std::vector<pid_t> out;
    for (pid_t p : now) {
        if (std::find(before.begin(), before.end(), p) == before.end()) out.push_back(p);
    }
    return out;
}

// A target that streams `chunks` chunks of 1 KiB, `gap` apart: a long connection.
ScriptedServer::Handler streaming(int chunks, std::chrono::milliseconds gap) {
    return [chunks, gap](int fd, const std::string&) {
        const std::string chunk(1024, 'x');
        ScriptedServer::send_all(
            fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(chunks * chunk.size()) +
                    "\r\nX-Instance: stream\r\n\r\n");
        for (int i = 0; i < chunks; ++i) {
            std::this_thread::sleep_for(gap);  // the target's pace, not a test wait
            ScriptedServer::send_all(fd, chunk);
        }
    };
}

TEST_F(SluiceTest, ReloadsUnderLoadLoseNoConnection) {
    start_backends(3);
    extra_top_ = "drain_timeout = \"5s\"\n";
    start_sluice(2);
    const std::vector<std::vector<size_t>> sets = {{0, 1}, {1, 2}, {0, 2}, {0, 1, 2}};
    LoadGenerator load(port_, 2);
    int valid = 0, invalid = 0;
    for (int i = 0; i < 24; ++i) {
        if (i % 4 == 3) {
            reload(
                "listen = \"127.0.0.1:" + std::to_string(port_) + "\"\n[[targets]]\naddress = 1\n",
                true);
            ++invalid;
            continue;
        }
        const auto& set = sets[i % sets.size()];
        reload(config_text(set));
        ++valid;
        // Once the old generation stops accepting, only the new target set serves.
        std::set<std::string> allowed;
        for (size_t b : set) allowed.insert(backends_[b].name);
        EXPECT_TRUE(wait_until(
            [&] {
                for (int k = 0; k < 6; ++k) {
                    if (!allowed.count(get().instance)) return false;
                }
                return true;
            },
            kPatience))
            << "reload " << i;
    }
    // Keep the load on until it has opened thousands of connections (or for 30 s), and in any
    // case until a thousand have been served: a loaded machine may be slower, never wrong.
    wait_until([&] { return load.ok() + load.failed() >= 3000; }, 30s);
    EXPECT_TRUE(wait_until([&] { return load.ok() >= 1000; }, kPatience));
    load.stop();
    std::printf("[ measure  ] %d valid and %d invalid reloads; %ld connections, %ld failed\n",
                valid, invalid, load.ok() + load.failed(), load.failed());
    EXPECT_EQ(load.failed(), 0) << load.last_failure();
    EXPECT_GE(valid + invalid, 20);
    // Every old generation drains and exits: one checker and two workers are left.
    EXPECT_TRUE(wait_until([&] { return children_of(sluice_->pid()).size() == 3; }, kPatience))
        << children_of(sluice_->pid()).size() << " children";
}

TEST_F(SluiceTest, InvalidReloadKeepsServingAndSaysWhere) {
    start_backends(1);
    start_sluice(1);
    reload("[[targets]]\naddress = \"x:1\"\nbogus = 1\n", true);
    EXPECT_THAT(sluice_->log(), HasSubstr(config_path_ + ":3: unknown key"));
    EXPECT_EQ(get().status, 200);
}

// listen and admin on port 0: a reload that keeps both keeps their sockets, so the ports the
// kernel gave at start keep serving and no new listener is opened.
TEST_F(SluiceTest, PortsGivenForPortZeroSurviveAReload) {
    start_backends(1);
    with_admin_ = true;
    start_sluice(1);
    ASSERT_NE(admin_port_, 0) << sluice_->log();
    reload(config_text());
    EXPECT_EQ(get().status, 200);
    // The retiring checker shares the admin socket until it exits: a request it accepted
    // just before its SIGTERM is cut (known; see docs/ARCHITECTURE.md), so wait for a reply.
    EXPECT_TRUE(wait_until([&] { return admin("/status").status == 200; }, kPatience));
    EXPECT_EQ(log_count(" listening on "), 1) << sluice_->log();
    EXPECT_EQ(log_count("admin listener on "), 1) << sluice_->log();
}

TEST_F(SluiceTest, HealthStateSurvivesAReload) {
    // A target that accepts traffic but whose health check never answers: DOWN (timeout).
    // If a reload reset it to UP it would get connections until its first check timed out.
    ScriptedServer sick([&](int fd, const std::string& path) {
        if (path == "/healthz") return sick.hang(fd);
        ScriptedServer::send_all(fd, ScriptedServer::reply(200, "sick", "sick"));
    });
    start_backends(1);
    extra_targets_ = "\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(sick.port()) +
                     "\"\nhealth_check_endpoint = \"/healthz\"\n";
    start_sluice(2);
    ASSERT_TRUE(wait_until([&] { return log_count("Healthy targets: 1") > 0; }, kPatience));
    reload(config_text());  // the same targets: a new generation with carried health
    for (int i = 0; i < 30; ++i) EXPECT_EQ(get().instance, "api-1") << "request " << i;
}

TEST_F(SluiceTest, LongConnectionSpansAReload) {
    ScriptedServer stream(streaming(20, 50ms));
    start_backends(1);
    extra_targets_ =
        "\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(stream.port()) + "\"\n";
    extra_top_ = "drain_timeout = \"10s\"\n";
    start_sluice(1);
    // Find the rotation slot of the stream target, then start the long download.
    std::future<HttpReply> download;
    for (int i = 0; i < 2 && !download.valid(); ++i) {
        if (get().instance == "api-1")
            download = std::async(std::launch::async,
                                  [&] { return http_request(port_, "GET", "/", "", 10s); });
    }
    ASSERT_TRUE(download.valid());
    reload(config_text());  // removes the stream target
    reload(config_text());  // and a second generation on top
    const HttpReply reply = download.get();
    EXPECT_EQ(reply.status, 200);
    EXPECT_EQ(reply.instance, "stream");
    EXPECT_EQ(reply.body, std::string(20 * 1024, 'x'));
}

// What the old generation counts while it drains is not lost: once its last process exits,
// the bytes of a download that spanned the reload are in the new generation's /metrics.
TEST_F(SluiceTest, BytesCountedWhileDrainingReachTheMetrics) {
    ScriptedServer stream(streaming(20, 50ms));
    start_backends(1);
    const std::string target = "127.0.0.1:" + std::to_string(stream.port());
    const std::string labels = "{target=\"" + target + "\",address=\"" + target + "\"";
    extra_targets_ = "\n[[targets]]\naddress = \"" + target + "\"\n";
    extra_top_ = "drain_timeout = \"10s\"\n";
    with_admin_ = true;
    start_sluice(1);
    const uint16_t admin = admin_port_;
    const auto metrics = [&] { return http_request(admin, "GET", "/metrics").body; };
    size_t streamed = 0;  // what the stream target sent to clients, headers included
    std::future<HttpReply> download;
    for (int i = 0; i < 2 && !download.valid(); ++i) {
        const HttpReply r = get();
        if (r.instance == "stream") streamed += r.raw.size();
        if (r.instance == "api-1")
            download = std::async(std::launch::async,
                                  [&] { return http_request(port_, "GET", "/", "", 10s); });
    }
    ASSERT_TRUE(download.valid());
    // Generation 1 holds the download when the reload comes (the stream target stays).
    ASSERT_TRUE(wait_until(
        [&] {
            return metrics().find("sluice_target_active_connections" + labels + "} 1\n") !=
                   std::string::npos;
        },
        5s));
    reload(config_text());
    const HttpReply reply = download.get();
    ASSERT_EQ(reply.instance, "stream");
    streamed += reply.raw.size();
    ASSERT_TRUE(wait_until([&] { return log_count("generation 1 has finished") > 0; }, 10s))
        << sluice_->log();
    EXPECT_THAT(metrics(),
                HasSubstr("sluice_target_bytes_total" + labels + ",direction=\"to_client\"} " +
                          std::to_string(streamed) + "\n"));
}

TEST_F(SluiceTest, KilledWorkerUnderLoadIsReplacedWithinASecond) {
    start_backends(2);
    start_sluice(2);
    std::vector<pid_t> before;
    ASSERT_TRUE(
        wait_until([&] { return (before = children_of(sluice_->pid())).size() == 3; }, kPatience));
    LoadGenerator load(port_, 2);
    ASSERT_TRUE(wait_until([&] { return load.ok() > 200; }, kPatience));
    // The checker starts first, so the last child is a worker.
    const auto killed_at = Clock::now();
    ::kill(before.back(), SIGKILL);
    ASSERT_TRUE(wait_until(
        [&] {
            const auto now = children_of(sluice_->pid());
            return now.size() == 3 && new_pids(before, now).size() == 1;
        },
        kPatience));
    const auto respawn_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed_at).count();
    const long ok_at_respawn = load.ok();
    ASSERT_TRUE(wait_until([&] { return load.ok() > ok_at_respawn + 200; }, kPatience));
    load.stop();
    std::printf(
        "[ measure  ] worker respawned %lld ms after kill -9; %ld connections, %ld "
        "failed\n",
        static_cast<long long>(respawn_ms), load.ok() + load.failed(), load.failed());
    EXPECT_LT(respawn_ms, 1000);
    // Only what the killed worker was serving may fail: at most one per client.
    EXPECT_LE(load.failed(), 2) << load.last_failure();
}

TEST_F(SluiceTest, KilledCheckerIsReplacedAndHealthStaysRight) {
    start_backends(2);
    start_sluice(1);
    std::vector<pid_t> before;
    ASSERT_TRUE(
        wait_until([&] { return (before = children_of(sluice_->pid())).size() == 2; }, kPatience));
    ::kill(before.front(), SIGKILL);  // the checker is started first
    std::vector<pid_t> fresh;
    ASSERT_TRUE(wait_until(
        [&] {
            const auto now = children_of(sluice_->pid());
            fresh = new_pids(before, now);
            return now.size() == 2 && fresh.size() == 1;
        },
        kPatience));
    stop_backend(backends_[0]);
    const std::string line = "health[" + std::to_string(fresh.front()) +
                             "] warn: target 127.0.0.1:" + std::to_string(backends_[0].port) +
                             " DOWN";
    EXPECT_TRUE(wait_until([&] { return log_count(line) >= 1; }, kPatience)) << sluice_->log();
    EXPECT_EQ(spread(10)["api-2"], 10);
}

TEST_F(SluiceTest, SigtermLetsAConnectionInFlightFinish) {
    ScriptedServer stream(streaming(10, 100ms));
    extra_targets_ =
        "\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(stream.port()) + "\"\n";
    start_sluice(1);
    const int before = stream.requests();
    auto download =
        std::async(std::launch::async, [&] { return http_request(port_, "GET", "/", "", 10s); });
    ASSERT_TRUE(wait_until([&] { return stream.requests() > before; }, kPatience));
    sluice_->signal(SIGTERM);
    const HttpReply reply = download.get();
    EXPECT_EQ(reply.body, std::string(10 * 1024, 'x'));
    const int status = sluice_->wait_exit(kPatience);
    ASSERT_NE(status, -1);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_THAT(sluice_->log(), HasSubstr("all connections finished"));
}

}  // namespace
}  // namespace sluice::test
