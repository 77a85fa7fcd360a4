// The master under trouble: a reload whose new generation cannot run, a checker that stops
// reporting, children that run out of tasks, and the log of many reloads.

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "scripted_server.hpp"
#include "sluice_fixture.hpp"

namespace sluice::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Sends a request on `fd` and reads until the peer closes (or `timeout`): the raw reply.
std::string exchange(int fd, const std::string& path, std::chrono::milliseconds timeout) {
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) return "";
    std::string reply;
    char buffer[4096];
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        reply.append(buffer, static_cast<size_t>(n));
    }
    return reply;
}

// The pid in the last "started health process PID" line of `log`, or -1.
pid_t last_checker(const std::string& log) {
    const std::string needle = "started health process ";
    const auto at = log.rfind(needle);
    return at == std::string::npos ? -1 : std::stoi(log.substr(at + needle.size()));
}

// A target that answers every request with 200 (its /healthz with 500 while `healthy` is
// false), but "/hold", which it counts in `holds` and never answers.
ScriptedServer::Handler answer_or_hold(ScriptedServer*& self, std::atomic<bool>& healthy,
                                       std::atomic<int>& holds) {
    return [&self, &healthy, &holds](int fd, const std::string& path) {
        if (path == "/hold") {
            ++holds;
            return self->hang(fd);
        }
        const int status = path == "/healthz" && !healthy.load() ? 500 : 200;
        ScriptedServer::send_all(fd, ScriptedServer::reply(status, "ok", "scripted"));
    };
}

// A reload that passes the config check but whose processes cannot run (a master that is not
// root cannot switch to `user`) must leave the serving generation alone: it is reported
// failed, old connections and new ones are served, the master keeps running, and a good
// reload afterwards works.
TEST_F(SluiceTest, ReloadWhoseProcessesCannotRunKeepsTheOldGeneration) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run sluice as nobody (setpriv)";
    if (relay_line().find("kernel") != std::string::npos)
        GTEST_SKIP() << "sluice runs unprivileged here: it cannot load the kernel relay";
    ScriptedServer* self = nullptr;
    std::atomic<bool> healthy{true};
    std::atomic<int> holds{0};
    ScriptedServer target(answer_or_hold(self, healthy, holds));
    self = &target;
    extra_targets_ = "\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(target.port()) +
                     "\"\nhealth_check_endpoint = \"/healthz\"\n";
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);  // nobody reads the config file
    wrapper_ = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    start_sluice(2);
    // A connection the old generation has accepted and connected before the reload.
    const int existing = connect_loopback(port_);
    ASSERT_GE(existing, 0);
    ASSERT_TRUE(wait_until([&] { return get("/").status == 200; }, kPatience));

    extra_top_ = "user = \"daemon\"\n";
    reload(config_text(), true);
    EXPECT_THAT(sluice_->log(),
                HasSubstr("reload failed, generation 1 keeps serving: generation 2"));
    EXPECT_THAT(sluice_->log(), Not(HasSubstr("no worker can run")));
    for (int i = 0; i < 10; ++i) EXPECT_EQ(get("/").status, 200) << "request " << i;
    EXPECT_THAT(exchange(existing, "/", 10s), HasSubstr("HTTP/1.1 200"));
    ::close(existing);
    EXPECT_TRUE(sluice_->running());

    extra_top_ = "";
    reload(config_text());
    EXPECT_THAT(sluice_->log(), HasSubstr("reload done: generation 3 is serving"));
    EXPECT_EQ(get("/").status, 200);
}

// Each replaced generation is reported finished once, however its processes' exits were
// reaped (two workers of one generation often go in one pass).
TEST_F(SluiceTest, EachReplacedGenerationIsReportedFinishedOnce) {
    start_backends(1);
    start_sluice(3);
    constexpr int kReloads = 8;
    for (int i = 0; i < kReloads; ++i) reload(config_text());
    // One checker and three workers are left once every old generation has exited.
    ASSERT_TRUE(wait_until([&] { return children_of(sluice_->pid()).size() == 4; }, kPatience));
    ASSERT_TRUE(wait_until([&] { return log_count(" has finished") >= kReloads; }, kPatience));
    EXPECT_EQ(log_count(" has finished"), kReloads) << sluice_->log();
    for (int g = 1; g <= kReloads; ++g)
        EXPECT_EQ(log_count("generation " + std::to_string(g) + " has finished"), 1) << g;
}

// With no checker running (here: stopped, so the master cannot replace it), a target that a
// worker marked DOWN passively would never come back. Once the checker has been silent for
// its bound, workers try DOWN targets again, and the master says loudly that none runs.
TEST_F(SluiceTest, WithNoCheckerRunningADownTargetIsTriedAgain) {
    start_backends(1);
    start_sluice(1);
    const pid_t checker = last_checker(sluice_->log());
    ASSERT_GT(checker, 0);
    ASSERT_EQ(::kill(checker, SIGSTOP), 0);
    struct Resume {
        pid_t pid;
        ~Resume() { ::kill(pid, SIGCONT); }
    } resume{checker};
    stop_backend(backends_[0]);
    // The worker's failed connect marks the target DOWN; nobody checks it any more.
    ASSERT_TRUE(wait_until(
        [&] { return get().status == 503 && log_count("seen by a worker") >= 1; }, kPatience))
        << sluice_->log();
    start_backend(backends_[0]);
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_TRUE(wait_until([&] { return get().status == 200; }, kPatience)) << sluice_->log();
    EXPECT_TRUE(
        wait_until([&] { return log_count("no health checker has run for") >= 1; }, kPatience))
        << sluice_->log();
}

// Out of tasks: the children run as one user under RLIMIT_NPROC 24 and idle clients hold
// connection threads. The worker caps its threads by the task budget (logged at start), so
// the checker keeps room: killed, it is respawned and goes on checking (a target flips DOWN
// and comes back UP).
TEST_F(SluiceTest, WorkersLeaveTheCheckerRoomUnderATaskLimit) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: RLIMIT_NPROC binds the user it switches to";
    ScriptedServer* self = nullptr;
    std::atomic<bool> healthy{true};
    std::atomic<int> holds{0};
    ScriptedServer target(answer_or_hold(self, healthy, holds));
    self = &target;
    extra_top_ = "user = \"games\"\n";
    extra_targets_ = "\n[[targets]]\naddress = \"127.0.0.1:" + std::to_string(target.port()) +
                     "\"\nhealth_check_endpoint = \"/healthz\"\n";
    wrapper_ = {"/usr/bin/prlimit", "--nproc=24:24"};
    start_sluice(1);
    // 24 tasks, 1 worker, 1 target: the worker may run 15 connection threads.
    EXPECT_THAT(sluice_->log(), HasSubstr("task limits: nproc 24, allow 15)"));
    std::vector<int> held;
    for (int i = 0; i < 40; ++i) {
        const int fd = connect_loopback(port_);
        ASSERT_GE(fd, 0);
        const std::string request = "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n";
        ASSERT_GT(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), 0);
        held.push_back(fd);
    }
    ASSERT_TRUE(wait_until([&] { return holds.load() >= 15; }, kPatience))
        << holds.load() << " held; " << sluice_->log();
    const pid_t first = last_checker(sluice_->log());
    ASSERT_EQ(::kill(first, SIGKILL), 0);
    ASSERT_TRUE(wait_until([&] { return last_checker(sluice_->log()) != first; }, kPatience));
    const std::string me = "health[" + std::to_string(last_checker(sluice_->log())) + "]";
    healthy = false;
    EXPECT_TRUE(
        wait_until([&] { return log_count(me + " warn: target 127.0.0.1") >= 1; }, kPatience))
        << sluice_->log();
    healthy = true;
    EXPECT_TRUE(
        wait_until([&] { return log_count(me + " notice: target 127.0.0.1") >= 1; }, kPatience))
        << sluice_->log();
    // The held clients beyond the cap wait in the kernel's queue: 15 reached the target.
    EXPECT_EQ(holds.load(), 15);
    EXPECT_THAT(sluice_->log(), Not(HasSubstr("not restarting")));
    EXPECT_THAT(sluice_->log(), Not(HasSubstr("cannot start a connection thread")));
    for (int fd : held) ::close(fd);
}

}  // namespace
}  // namespace sluice::test
