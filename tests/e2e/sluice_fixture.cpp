#include "sluice_fixture.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace sluice::test {

void SluiceTest::TearDown() {
    for (Backend& b : backends_) {
        if (b.port_hold >= 0) ::close(b.port_hold);
        b.port_hold = -1;
    }
    if (!sluice_) return;
    sluice_->signal(SIGTERM);
    sluice_->wait_exit(15s);
    const std::string log = sluice_->log();
    for (const char* report : {"Sanitizer", "runtime error:"})
        EXPECT_EQ(log.find(report), std::string::npos) << log;
}

void SluiceTest::start_backends(int count) {
    for (int i = 1; i <= count; ++i) {
        Backend& backend = add_backend("api-" + std::to_string(i));
        start_backend(backend);
        if (HasFatalFailure()) return;
    }
}

Backend& SluiceTest::add_backend(const std::string& name, const std::string& host, uint16_t port) {
    Backend backend;
    backend.name = name;
    backend.host = host;
    backend.port = port;
    backend.port_hold = reserve_port(host, backend.port);
    backends_.push_back(std::move(backend));
    return backends_.back();
}

void SluiceTest::start_backend(Backend& backend) {
    backend.process = std::make_unique<Process>(
        std::vector<std::string>{SPELLS_API_BIN, "--host", backend.host, "--port",
                                 std::to_string(backend.port), "--name", backend.name},
        dir_.path() + "/" + backend.name + ".log");
    ASSERT_TRUE(wait_until(
        [&] {
            return http_request(backend.port, "GET", "/healthz", "", 500ms, backend.host.c_str())
                       .status == 200;
        },
        kPatience))
        << backend.name << " did not start: " << backend.process->log();
}

void SluiceTest::stop_backend(Backend& backend) {
    backend.process->signal(SIGKILL);
    ASSERT_NE(backend.process->wait_exit(kPatience), -1);
}

std::string SluiceTest::config_text(const std::vector<size_t>& only) const {
    // A test that sets `relay` itself (in extra_top_) keeps it, whatever SLUICE_TEST_RELAY says.
    const bool own_relay =
        extra_top_.rfind("relay = ", 0) == 0 || extra_top_.find("\nrelay = ") != std::string::npos;
    std::string text = "listen = \"" + listen_host_ + ":0\"\n" +
                       (with_admin_ ? "admin = \"127.0.0.1:0\"\n" : "") +
                       (own_relay ? "" : relay_line()) + extra_top_ +
                       "\n[health_check]\ninterval = \"" + std::to_string(interval_.count()) +
                       "ms\"\ntimeout = \"" + std::to_string(kHealthTimeout.count()) + "ms\"\n";
    for (size_t i = 0; i < backends_.size(); ++i) {
        if (!backends_[i].in_config) continue;
        if (!only.empty() && std::find(only.begin(), only.end(), i) == only.end()) continue;
        text += "\n[[targets]]\naddress = \"" + backends_[i].host + ":" +
                std::to_string(backends_[i].port) + "\"\nhealth_check_endpoint = \"/healthz\"\n";
    }
    return text + extra_targets_;
}

void SluiceTest::reload(const std::string& text, bool expect_failure) {
    const std::string marker = expect_failure ? "reload failed" : "reload done";
    const int before = log_count(marker);
    dir_.write("sluice.toml", text);
    sluice_->signal(SIGHUP);
    ASSERT_TRUE(wait_until([&] { return log_count(marker) > before; }, kPatience))
        << sluice_->log();
}

long SluiceTest::children_fds() const {
    long fds = 0;
    for (pid_t p : children_of(sluice_->pid())) fds += count_fds(p);
    return fds;
}

void SluiceTest::expect_children_back_to(size_t children, long base_fds) {
    std::vector<pid_t> now;
    EXPECT_TRUE(wait_until([&] { return (now = children_of(sluice_->pid())).size() == children; },
                           kPatience))
        << now.size() << " children";
    long fds = 0;
    EXPECT_TRUE(wait_until([&] { return (fds = children_fds()) <= base_fds; }, kPatience))
        << fds << " fds now, " << base_fds << " at start";
    long threads = 0;
    for (pid_t p : children_of(sluice_->pid())) threads += threads_of(p);
    const long workers = static_cast<long>(children) - 1;
    EXPECT_LE(threads, workers * (16 + 5) + 10) << "threads";
}

int SluiceTest::log_count(const std::string& needle) const {
    return count_of(sluice_->log(), needle);
}

void SluiceTest::start_sluice(int workers) {
    config_path_ = dir_.write("sluice.toml", config_text());
    launch_sluice(workers);
    if (HasFatalFailure()) return;
    ASSERT_TRUE(wait_until([&] { return get("/healthz").status == 200; }, kPatience))
        << "sluice did not serve: " << sluice_->log();
}

void SluiceTest::launch_sluice(int workers) {
    std::vector<std::string> argv = wrapper_;
    for (const char* arg : {SLUICE_BIN, "--config"}) argv.push_back(arg);
    argv.push_back(config_path_);
    argv.push_back("--workers");
    argv.push_back(std::to_string(workers));
    // A test may start sluice more than once: the log is appended to, and only what this
    // start wrote names its ports.
    const std::string log_path = dir_.path() + "/sluice.log";
    sluice_.reset();
    const size_t from = read_file(log_path).size();
    sluice_ = std::make_unique<Process>(argv, log_path);
    // The master logs its admin listener (if any), then "sluice VERSION listening on
    // ADDRESS:PORT", before it forks anything.
    ASSERT_TRUE(wait_until(
        [&] {
            port_ = logged_port(sluice_->log().substr(from), " listening on ");
            return port_ != 0 || !sluice_->running();
        },
        kPatience));
    ASSERT_NE(port_, 0) << "sluice did not log its port: " << sluice_->log();
    admin_port_ = logged_port(sluice_->log().substr(from), "admin listener on ");
}

bool SluiceTest::start_sluice_with_hosts(int workers, const std::string& hosts) {
    if (::geteuid() != 0) {
        [] { GTEST_SKIP() << "needs root (a mount namespace for /etc/hosts); CI runs as root"; }();
        return false;
    }
    const std::string hosts_file = dir_.write("hosts", hosts);
    const std::string nsswitch = dir_.write("nsswitch.conf", "hosts: files\n");
    wrapper_ = {"/usr/bin/unshare", "--mount", "/bin/sh", "-c",
                "mount --bind " + hosts_file + " /etc/hosts && mount --bind " + nsswitch +
                    " /etc/nsswitch.conf && exec \"$0\" \"$@\""};
    start_sluice(workers);
    return true;
}

std::map<std::string, int> SluiceTest::spread(int n) {
    std::map<std::string, int> served;
    for (int i = 0; i < n; ++i) {
        const HttpReply reply = get();
        ++served[reply.status == 200 ? reply.instance : ""];
    }
    return served;
}

}  // namespace sluice::test
