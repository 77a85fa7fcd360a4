#pragma once
// Which relay the workers use, and the kernel relay's program and maps when they may use it:
// loaded once, by the master (root, before it forks and before children drop privileges),
// the first time a config asks for it, and kept for the master's life (a reload reuses it).

#include <memory>
#include <string>

#include "conf/config.hpp"
#include "worker/kernel_relay.hpp"

namespace sluice {

class RelaySetup {
public:
    // Readies what `config.relay` asks for: loads the kernel relay for "auto" (once; if it
    // fails the user relay serves) and "kernel" (tried again while it fails). Throws
    // std::runtime_error when "kernel" is asked for and it cannot be loaded.
    void prepare(const Config& config);
    // The kernel relay the workers of a generation with `config` use, or null: the user relay.
    const worker::KernelRelay* for_workers(const Config& config) const;
    // For the start line: "kernel", "user", or "user (kernel relay unavailable: WHY)".
    std::string describe(const Config& config) const;

private:
    std::unique_ptr<worker::KernelRelay> kernel_;
    std::string why_not_;  // why the last load failed
    bool tried_ = false;
};

}  // namespace sluice
