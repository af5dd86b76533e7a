// `rmai calibrate`: microbenchmarks of this machine fitted into a platform preset
// (calib/calibrate.hpp). The preset is written only when every probe succeeded, atomically: an
// interrupted calibration leaves nothing behind.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "calib/calibrate.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/progress.hpp"
#include "config/errors.hpp"
#include "config/tree.hpp"
#include "posix/files.hpp"

namespace rmai::cli {
namespace fs = std::filesystem;
namespace {

struct Options {
  calib::Options calib;
  std::string out, repeats, disk, server, secret_file;
};

// The preset's place: a .yaml file in an existing, writable directory. Checked before any probe.
void check_out(const fs::path& out) {
  if (out.extension() != ".yaml") throw InputError("-o", "'" + out.string() + "': a platform preset is a .yaml file");
  std::error_code ec;
  if (fs::is_directory(out, ec)) throw InputError("-o", "'" + out.string() + "' is a directory");
  const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec)) throw InputError("-o", "directory '" + dir.string() + "' does not exist");
  // A file created and removed, not access(): root passes access() where a write still fails.
  std::string probe = (dir / ".rmai-calibrate-XXXXXX").string();
  const int fd = ::mkstemp(probe.data());
  if (fd < 0) throw InputError("-o", "directory '" + dir.string() + "' is not writable: " + std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

// How experiments name the preset: by name when it is in models/platforms/, else by its path.
std::string platform_reference(const fs::path& out) {
  std::error_code ec;
  const fs::path dir = fs::weakly_canonical(fs::absolute(out).parent_path(), ec);
  if (!ec && dir == fs::weakly_canonical(config::models_dir() / "platforms", ec)) return out.stem().string();
  return out.string();
}

int calibrate(Options& o) {
  check_out(o.out);
  if (!o.repeats.empty()) o.calib.repeats = static_cast<unsigned>(std::min<std::uint64_t>(parse_count("--repeats", o.repeats), 1u << 20));
  else o.calib.repeats = o.calib.quick ? 3 : 5;
  if (!o.disk.empty()) o.calib.disk = o.disk;
  if (!o.server.empty()) o.calib.server = o.server;
  if (!o.secret_file.empty()) o.calib.secret_file = o.secret_file;
  o.calib.command = "rmai";
  for (const auto& arg : command_line()) o.calib.command += " " + arg;
  Progress progress("rmai calibrate");
  const std::string text = calib::calibrate(o.calib, [&progress](const std::string& line) { progress.note(line); });
  posix::write_file_atomic(o.out, text);
  progress.note("wrote " + o.out + " in " + clock_text(progress.elapsed_s()) + "; use it with --set platform=" +
                platform_reference(o.out));
  return 0;
}

}  // namespace

void add_calibrate_command(CLI::App& root) {
  const auto o = std::make_shared<Options>();
  CLI::App* app = add_command(root, "calibrate", "Measure this machine and write a platform preset for the simulator",
                              [o] { return calibrate(*o); });
  app->footer(
      "Runs microbenchmarks of the emulator's paths on this machine (DRAM, memcpy, kernel fault and userfaultfd costs, "
      "huge pages, the libfabric transport to a memd, optionally a disk), fits the simulator's platform parameters by "
      "least squares and writes FILE.yaml: a platform preset with every measured component inline and, beside each "
      "number, the probe, the fit's residual and the median and spread of the repeats (docs/interfaces.md). The file "
      "is written only when every probe succeeded. Use it with --set platform=NAME when FILE is "
      "models/platforms/NAME.yaml, or --set platform=FILE.yaml from anywhere. Needs userfaultfd and 32 huge pages "
      "(root reserves them for the run). Without --server, memd runs as a child on loopback (calib/memd.yaml); to "
      "calibrate a cluster, start `rmai memd calib/memd.yaml --listen ADDR:PORT --secret-file F --set "
      "emul.provider=verbs` on a memory server and give --provider verbs --server ADDR:PORT --secret-file F here.");
  add_value(app, "-o,--out", o->out, "the platform preset to write (a .yaml file)")->type_name("FILE.yaml")->required();
  add_value(app, "--provider", o->calib.provider, "libfabric provider to memd: tcp (default), shm or verbs")->type_name("P");
  add_value(app, "--disk", o->disk, "also measure the disk holding DIR (nvme); otherwise the default platform's drive is named")
      ->type_name("DIR");
  add_value(app, "--server", o->server, "a running memd (started with calib/memd.yaml) instead of a child on loopback")
      ->type_name("HOST:PORT");
  add_value(app, "--secret-file", o->secret_file, "that memd's shared secret")->type_name("F");
  add_value(app, "--repeats", o->repeats, "repeats of each probe (default 5, with --quick 3; at most 100)")->type_name("N");
  app->add_flag("--quick", o->calib.quick, "fewer sizes and samples: a rough preset in a few seconds (what the tests run)");
}

}  // namespace rmai::cli
