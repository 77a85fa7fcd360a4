// The config loader on any bytes: a Config or a ConfigError that names FILE:LINE, never a
// crash, another exception, undefined behaviour or a leak. A Config it returns keeps the
// bounds the other roles rely on without checking them again.

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/limits.hpp"
#include "conf/loader.hpp"
#include "fuzz/fuzz_require.hpp"

namespace {

constexpr const char* kName = "fuzz.toml";

void require_usable(const sluice::HealthCheckConfig& check) {
    FUZZ_REQUIRE(check.rise >= 1 && check.rise <= 100, "rise");
    FUZZ_REQUIRE(check.fall >= 1 && check.fall <= 100, "fall");
    FUZZ_REQUIRE(check.interval.count() >= 10 && check.timeout.count() >= 1, "interval/timeout");
    FUZZ_REQUIRE(!check.expect_status.empty(), "expect_status");
    for (const auto& range : check.expect_status)
        FUZZ_REQUIRE(
            range.low >= 100 && range.low <= range.high && range.high <= 599,
            "expect_status " + std::to_string(range.low) + "-" + std::to_string(range.high));
}

void require_usable(const sluice::Config& config) {
    FUZZ_REQUIRE(!config.targets.empty() && config.targets.size() <= sluice::kMaxTargets,
                 "target count");
    FUZZ_REQUIRE(
        !config.workers || (*config.workers >= 1 && *config.workers <= sluice::kMaxWorkers),
        "workers");
    require_usable(config.health_check);
    for (const auto& target : config.targets) {
        FUZZ_REQUIRE(target.host_port.port != 0 && !target.host_port.host.empty(), target.address);
        FUZZ_REQUIRE(target.weight >= 1 && target.weight <= 256, target.address);
        FUZZ_REQUIRE(target.line >= 1, target.address);
        FUZZ_REQUIRE(
            target.health_check_endpoint.empty() || target.health_check_endpoint.front() == '/',
            target.health_check_endpoint);
        require_usable(target.health_check);
    }
}

// "fuzz.toml:LINE: ..." with LINE a number from 1 on.
void require_located(const std::string& message) {
    const std::string prefix = std::string(kName) + ":";
    FUZZ_REQUIRE(message.rfind(prefix, 0) == 0, message);
    size_t i = prefix.size();
    const size_t digits = i;
    while (i < message.size() && std::isdigit(static_cast<unsigned char>(message[i]))) ++i;
    FUZZ_REQUIRE(i > digits && message[digits] != '0' && i < message.size() && message[i] == ':',
                 message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        require_usable(sluice::parse_config(text, kName));
    } catch (const sluice::ConfigError& e) {
        require_located(e.what());
    }
    return 0;
}
