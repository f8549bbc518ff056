# Names: unit names, user names, the claims directory, as the Go side
# checks them (pkg/unitname, pkg/policy; the shared corpora
# pkg/unitname/testdata/names.json and pkg/policy/testdata/users.json hold
# both sides to one rule). Each check returns null when the name is fine,
# else why not (a sentence the option types put after the option path).
{ pc, util }:
let
  inherit (util)
    hasSuffix
    hasPrefix
    count
    unitTypes
    ;
in
rec {
  # pkg/unitname.Validate: 1-255 bytes of systemd's unit name characters,
  # a known type after the last dot, something before it, and at most one
  # '@' that is neither first nor last (a template is nothing that runs).
  unitNameProblem =
    name:
    let
      m = builtins.match "(.*)\\.([^.]*)" name;
      prefix = builtins.elemAt m 0;
      suffix = builtins.elemAt m 1;
      ats = count "@" prefix;
    in
    if name == "" then
      "is empty"
    else if builtins.stringLength name > 255 then
      "is longer than 255 bytes"
    else if builtins.match "[A-Za-z0-9:_.\\@-]+" name == null then
      "has a character systemd does not allow in unit names (only A-Z a-z 0-9 : _ . \\ @ -)"
    else if m == null || prefix == "" then
      "has no type suffix (such as .service)"
    else if !builtins.elem suffix unitTypes then
      "has the unknown type \"${suffix}\" (one of ${builtins.concatStringsSep ", " unitTypes})"
    else if ats > 1 then
      "has more than one '@'"
    else if ats == 1 && hasPrefix "@" prefix then
      "starts with '@'"
    else if ats == 1 && hasSuffix "@" prefix then
      "is a template; name an instance such as ${builtins.substring 0 (builtins.stringLength prefix) prefix}NAME.${suffix}"
    else
      null;

  # What may yield (services.portclaim.yield keys, policy units): a unit
  # name of type service or socket.
  claimableUnitProblem =
    name:
    let
      p = unitNameProblem name;
    in
    if p != null then
      p
    else if !(hasSuffix ".service" name || hasSuffix ".socket" name) then
      "is not a .service or .socket unit (only those hold ports and can yield)"
    else
      null;

  isClaimableUnit = name: builtins.isString name && claimableUnitProblem name == null;

  # pkg/policy's user names (what NixOS's users.users accepts, and safe as
  # a directory name under the claims directory): 1-31 characters, a
  # letter or '_' first, then letters, digits, '_', '.', '-', and a '$'
  # only last.
  userNameProblem =
    name:
    if name == "" then
      "is empty"
    else if builtins.stringLength name > 31 then
      "is longer than 31 characters (NixOS takes no longer user names)"
    else if name == "." || name == ".." then
      "is not a user name"
    else if builtins.match "[A-Za-z_][A-Za-z0-9_.-]*[$]?" name == null then
      "is not a user name (a letter or _ first, then letters, digits, _ . -, and $ only last)"
    else
      null;

  # Whether dir is parent or below it.
  under = parent: dir: dir == parent || hasPrefix (parent + "/") dir;

  # pkg/policy's claimsDir: absolute and clean (filepath.Clean leaves it
  # as it is). Stricter than Go in three ways that keep the unit files
  # sound: "/" is refused (claims would land in /<user>/), and so are
  # characters that systemd or tmpfiles would read specially in
  # ReadWritePaths=, ConditionPathExists= and tmpfiles.d lines (space,
  # '%' specifiers, quotes, backslash, control characters), and places
  # portclaim's hardened units do not share with the rest of the system
  # (a claim the broker wrote there would be invisible to the start
  # conditions, which systemd checks outside it).
  claimsDirProblem =
    dir:
    let
      private = builtins.filter (p: under p dir) [
        "/tmp"
        "/var/tmp"
      ];
      home = builtins.filter (p: under p dir) [
        "/home"
        "/root"
        "/run/user"
      ];
      kernel = builtins.filter (p: under p dir) [
        "/dev"
        "/proc"
        "/sys"
      ];
    in
    if !hasPrefix "/" dir then
      "is not an absolute path"
    else if dir == "/" then
      "is the root directory"
    else if builtins.match "(/[^/]+)+" dir == null then
      "is not clean (\"//\" or a trailing \"/\")"
    else if builtins.any (s: s == "." || s == "..") (builtins.filter builtins.isString (builtins.split "/" dir))
    then
      "is not clean (a \".\" or \"..\" segment)"
    else if builtins.match "[A-Za-z0-9/._+,=@:-]+" dir == null then
      "has a character unit files and tmpfiles.d would read specially (use A-Z a-z 0-9 / . _ + , = @ : -)"
    else if private != [ ] then
      "is under ${builtins.head private}, which portclaim's units see as their own (PrivateTmp=yes): what they write there, nothing else sees; use a directory under /var/lib"
    else if home != [ ] then
      "is under ${builtins.head home}, which portclaim's units cannot write (ProtectHome=); use a directory under /var/lib"
    else if kernel != [ ] then
      "is under ${builtins.head kernel}, the kernel's; use a directory under /var/lib"
    else
      null;

  # Throws with the name and the problem, for the functions below that
  # take names from a caller that did not go through the option types.
  checked =
    what: problem: name:
    let
      p = problem name;
    in
    if p == null then name else throw "portclaim: ${what} ${builtins.toJSON name} ${p}";
}
