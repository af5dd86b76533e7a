// rmai memd: the emulator's memory server. Serves the expert objects of an experiment (its model,
// emul.scale, emul.layers and seed) to `rmai run --mode emul` clients over libfabric until SIGTERM or
// SIGINT.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <optional>

#include "cli/commands.hpp"
#include "emul/control.hpp"
#include "emul/emulation.hpp"
#include "config/errors.hpp"
#include "emul/memd.hpp"
#include "emul/objects.hpp"
#include "spec/experiment.hpp"
#include "cli/options.hpp"

namespace rmai::cli {
namespace {

struct Options {
  ExperimentArgs experiment;
  std::optional<std::string> listen;
  std::optional<std::string> secret_file;
  std::optional<std::string> ready_fd;
};

int memd(const Options& o) {
  int ready_fd = -1;
  if (o.ready_fd) {
    const std::string& v = *o.ready_fd;
    if (v.empty() || v.size() > 6 || v.find_first_not_of("0123456789") != std::string::npos)
      throw InputError("--ready-fd", "'" + v + "' is not a file descriptor number");
    ready_fd = std::stoi(v);
    if (::fcntl(ready_fd, F_GETFD) < 0) throw InputError("--ready-fd", "descriptor " + v + " is not open");
  }
  const auto e = spec::load_experiment(o.experiment.file, o.experiment.sets);
  const emul::Catalog catalog = emul::catalog_of(e);  // the one rmai run --mode emul expects

  std::string secret_file;
  if (o.secret_file)
    secret_file = *o.secret_file;
  else if (e.emul.secret_file)
    secret_file = e.emul.secret_file->string();
  else
    throw InputError("--secret-file", "memd does not serve without a shared secret: give --secret-file F or emul.secret_file");
  const auto [host, port] = emul::parse_host_port(o.listen.value_or(e.emul.server.value_or("127.0.0.1:0")),
                                                  o.listen ? "--listen" : "emul.server");

  emul::MemoryServerOptions options;
  options.provider = e.emul.provider;
  options.host = host;
  options.port = port;
  options.secret = emul::read_secret_file(secret_file);

  // Every thread the server starts inherits this mask, so the signals wait for sigwait below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  emul::MemoryServer server(catalog, options);
  std::fprintf(stderr, "rmai memd: serving %zu objects of %.1f MB (%.2f GB) of %s via %s on %s\n",
               catalog.objects().size(), catalog.object_bytes() / 1e6, catalog.total_bytes() / 1e9,
               catalog.spec().model.c_str(), options.provider.c_str(), server.address().c_str());
  if (ready_fd >= 0) {
    const std::string line = server.address() + "\n";
    if (::write(ready_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      std::cerr << "rmai memd: could not write to --ready-fd " << ready_fd << "\n";
    ::close(ready_fd);
  }
  int signal = 0;
  while (sigwait(&stop_signals, &signal) != 0) {
  }
  server.stop();
  std::fprintf(stderr, "rmai memd: stopped by %s after %llu clients (%llu refused)\n", strsignal(signal),
               static_cast<unsigned long long>(server.clients_accepted()),
               static_cast<unsigned long long>(server.clients_refused()));
  return 0;
}

}  // namespace

void add_memd_command(CLI::App& root) {
  const auto o = std::make_shared<Options>();
  CLI::App* app = add_command(root, "memd",
                              "The emulator's memory server: serves an experiment's expert objects",
                              [o] { return memd(*o); });
  app->footer(
      "Serves the expert objects of EXP.yaml (model, emul.scale, emul.layers, seed) over libfabric "
      "(emul.provider) until SIGTERM or SIGINT. Clients must give the same experiment and --set options.");
  add_experiment_args(app, o->experiment);
  add_each(app, "--listen", [o](const std::string& v) { o->listen = v; },
           "control socket (and fabric endpoint) address; default emul.server if the experiment names one, else "
           "127.0.0.1:0 (loopback, a free port)")
      ->type_name("HOST:PORT");
  add_each(app, "--secret-file", [o](const std::string& v) { o->secret_file = v; },
           "shared secret clients must present (at least 16 characters); default emul.secret_file. Required one "
           "way or the other.")
      ->type_name("F");
  add_each(app, "--ready-fd", [o](const std::string& v) { o->ready_fd = v; }, "write \"HOST:PORT\\n\" to descriptor N once serving, then close it")
      ->type_name("N");
}

}  // namespace rmai::cli
