#include "master/relay_setup.hpp"

#include <stdexcept>

namespace sluice {

void RelaySetup::prepare(const Config& config) {
    if (kernel_ || config.relay == RelayMode::user) return;
    if (config.relay == RelayMode::automatic && tried_) return;
    tried_ = true;
    kernel_ = worker::KernelRelay::load(why_not_);
    if (!kernel_ && config.relay == RelayMode::kernel)
        throw std::runtime_error("relay = \"kernel\", but the kernel relay cannot be used: " +
                                 why_not_);
}

const worker::KernelRelay* RelaySetup::for_workers(const Config& config) const {
    return config.relay == RelayMode::user ? nullptr : kernel_.get();
}

std::string RelaySetup::describe(const Config& config) const {
    if (for_workers(config) != nullptr)
        return config.relay == RelayMode::kernel ? "kernel" : "kernel after the first exchange";
    if (config.relay == RelayMode::user) return "user";
    return "user (kernel relay unavailable: " + why_not_ + ")";
}

}  // namespace sluice
