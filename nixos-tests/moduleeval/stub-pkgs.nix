# A stand-in for nixpkgs' package set, enough for the module system to
# evaluate home-manager's modules and portclaim's without nixpkgs: every
# package is a derivation-shaped attribute set with a plausible store path,
# and the builders (writeTextFile and friends) record what they were asked
# to write, so tests can read file contents back.
{
  lib,
  system ? "x86_64-linux",
  # Whether the build platform can run host binaries (false: a cross
  # build).
  native ? true,
}:
let
  hash = "00000000000000000000000000000000";
  drv =
    name: attrs:
    {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/${hash}-${name}";
      drvPath = "/nix/store/${hash}-${name}.drv";
      outputs = [ "out" ];
      outputName = "out";
      meta = { };
      passthru = { };
      overrideAttrs = _: drv name attrs;
      override = _: drv name attrs;
    }
    // attrs;
  pkg =
    pname:
    drv pname {
      inherit pname;
      version = "0";
      meta.mainProgram = pname;
    };

  writeTextFile =
    {
      name,
      text,
      destination ? "",
      executable ? false,
      checkPhase ? "",
      ...
    }:
    drv name {
      inherit
        text
        destination
        executable
        checkPhase
        ;
      stub = "writeTextFile";
    };

  platform = {
    inherit system;
    isLinux = true;
    isDarwin = false;
    isx86_64 = system == "x86_64-linux";
    isAarch64 = system == "aarch64-linux";
    isAarch32 = false;
    isi686 = false;
    isWindows = false;
    is64bit = true;
    parsed.kernel.name = "linux";
    config = system;
  };
  hostPlatform = platform // {
    canExecute = _: true;
  };
  buildPlatform = platform // {
    canExecute = _: native;
  };

  formats = {
    type = lib.types.anything;
    generate = name: _: drv name { };
    lib.types = {
      atom = lib.types.anything;
      listOrAtom = lib.types.anything;
    };
  };

  names = [
    "installShellFiles"
    "go"
    "shared-mime-info"
    "man"
    "glibcLocales"
    "bash"
    "bashInteractive"
    "coreutils"
    "dbus"
    "diffutils"
    "findutils"
    "gettext"
    "gawk"
    "gnugrep"
    "gnused"
    "jq"
    "ncurses"
    "nix"
    "ollama"
    "open-webui"
    "parallel"
    "podman"
    "python3"
    "shadow"
    "systemd"
    "xdg-utils"
  ];

  self =
    lib.genAttrs names pkg
    // {
      inherit lib writeTextFile;
      path = ./stub-nixpkgs;
      stdenv = {
        inherit hostPlatform buildPlatform;
        targetPlatform = hostPlatform;
        isLinux = true;
        isDarwin = false;
        shell = "/bin/sh";
        mkDerivation =
          a:
          drv (a.name or "${a.pname}-${a.version}") a
          # home-manager reads a podman quadlet build's units/ while it
          # evaluates (import from derivation): point it at a directory.
          // lib.optionalAttrs (a ? passthru.quadletData) { outPath = toString ./stub-quadlet; };
      };
      stdenvNoCC = self.stdenv;
      pkgsBuildHost = self;
      buildPackages = self;
      runtimeShell = "/bin/sh";
      system = system;
      config = { };
      writeText = name: text: writeTextFile { inherit name text; };
      writeTextDir =
        path: text:
        writeTextFile {
          name = builtins.baseNameOf path;
          destination = "/${path}";
          inherit text;
        };
      writeScript =
        name: text:
        writeTextFile {
          inherit name text;
          executable = true;
        };
      writeShellScript =
        name: text:
        writeTextFile {
          inherit name text;
          executable = true;
        };
      writeShellScriptBin =
        name: text:
        writeTextFile {
          inherit name text;
          executable = true;
          destination = "/bin/${name}";
        };
      runCommand =
        name: env: cmd:
        drv name {
          inherit env cmd;
          stub = "runCommand";
        };
      runCommandLocal = self.runCommand;
      symlinkJoin = a: drv a.name { inherit (a) paths; };
      buildEnv = a: drv a.name { paths = a.paths or [ ]; };
      linkFarm = name: entries: drv name { inherit entries; };
      callPackage = _: _: pkg "called";
      # Records its arguments (the flake's package is read, not built).
      buildGoModule =
        a:
        drv "${a.pname}-${a.version}" (
          a
          // {
            stub = "buildGoModule";
            meta = a.meta or { };
          }
        );
      formats = {
        toml = _: formats;
        yaml = _: formats;
        json = _: formats;
        ini = _: formats;
      };
    };
in
self
