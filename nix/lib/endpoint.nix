# Ports and addresses, as pkg/endpoint has them: IP address syntax, the
# bind-overlap rule, the one port formatter.
{ pc, util }:
rec {
  # An IP address as Go's netip.ParseAddr reads it (pkg/endpoint), without
  # a zone: IPv4 as four decimal octets without leading zeros; IPv6 as
  # eight groups of 1-4 hex digits, one "::" standing for at least one
  # group of zeros, an IPv4 address as the last two.
  isIPv4 =
    s:
    let
      octet = "(0|[1-9][0-9]?[0-9]?)";
      m = builtins.match "${octet}\\.${octet}\\.${octet}\\.${octet}" s;
    in
    m != null && builtins.all (o: builtins.fromJSON o <= 255) m;

  isIPv6 =
    s:
    let
      hex = g: builtins.match "[0-9A-Fa-f]{1,4}" g != null;
      groups = str: if str == "" then [ ] else builtins.filter builtins.isString (builtins.split ":" str);
      last = gs: builtins.elemAt gs (builtins.length gs - 1);
      # All groups hex, but the last may be an IPv4 address (two groups).
      tailOK =
        gs:
        gs == [ ]
        || (
          builtins.all hex (builtins.genList (builtins.elemAt gs) (builtins.length gs - 1))
          && (hex (last gs) || isIPv4 (last gs))
        );
      width = gs: builtins.length gs + (if gs != [ ] && isIPv4 (last gs) then 1 else 0);
      halves = builtins.filter builtins.isString (builtins.split "::" s);
      head = groups (builtins.head halves);
      tail = groups (builtins.elemAt halves 1);
    in
    if builtins.length halves == 1 then
      tailOK head && width head == 8
    else
      builtins.length halves == 2 && builtins.all hex head && tailOK tail && width head + width tail <= 7;

  isIPAddress = s: isIPv4 s || isIPv6 s;

  # An address in one canonical form, so that equal addresses compare
  # equal: IPv6 expanded to eight lower-case groups without leading
  # zeros, an IPv4-mapped IPv6 address as IPv4. "" stays "" (all).
  canonicalAddress =
    address:
    let
      a = builtins.replaceStrings [ "A" "B" "C" "D" "E" "F" ] [ "a" "b" "c" "d" "e" "f" ] address;
      groups = s: if s == "" then [ ] else builtins.filter builtins.isString (builtins.split ":" s);
      halves = builtins.filter builtins.isString (builtins.split "::" a);
      head = groups (builtins.head halves);
      tail = if builtins.length halves > 1 then groups (builtins.elemAt halves 1) else [ ];
      # an embedded IPv4 tail counts as two groups
      width = gs: builtins.foldl' (n: g: n + (if builtins.match ".*\\..*" g != null then 2 else 1)) 0 gs;
      zeros = builtins.genList (_: "0") (8 - width head - width tail);
      all = head ++ zeros ++ tail;
      strip = g: let m = builtins.match "0*([0-9a-f]+)" g; in if m == null then g else builtins.head m;
      last = builtins.elemAt all (builtins.length all - 1);
      mapped =
        builtins.length all == 7
        && builtins.all (g: strip g == "0") (builtins.genList (i: builtins.elemAt all i) 5)
        && strip (builtins.elemAt all 5) == "ffff"
        && builtins.match "[0-9.]+" last != null;
    in
    if a == "" || builtins.match ".*:.*" a == null then
      a
    else if mapped then
      last
    else
      builtins.concatStringsSep ":" (map strip all);

  # pkg/endpoint.Overlap for two { port; protocol; address; }: same
  # protocol and port, and equal addresses or either a wildcard ("" is
  # every address on both stacks; "0.0.0.0" every IPv4 address; "::"
  # every address, as a dual-stack socket binds).
  overlaps =
    a: b:
    let
      x = canonicalAddress (a.address or "");
      y = canonicalAddress (b.address or "");
      v6 = s: builtins.match ".*:.*" s != null;
      any6 = "0:0:0:0:0:0:0:0";
      wild = s: s == "0.0.0.0" || s == any6;
    in
    (a.protocol or "tcp") == (b.protocol or "tcp")
    && a.port == b.port
    && (
      x == ""
      || y == ""
      || (if v6 x == v6 y then x == y || wild x || wild y else (v6 x && x == any6) || (v6 y && y == any6))
    );

  # Whether a binding on a covers every address b binds (same protocol and
  # port): "" covers all, "::" (dual-stack) every address, "0.0.0.0"
  # every IPv4 address, and an address itself.
  covers =
    a: b:
    let
      x = canonicalAddress (a.address or "");
      y = canonicalAddress (b.address or "");
    in
    x == "" || x == y || x == "0:0:0:0:0:0:0:0" || (x == "0.0.0.0" && builtins.match ".*:.*" y == null && y != "");

  # One container's claims with overlapping ones made one, the widest
  # (of two that overlap, one always covers the other): podman may
  # publish a port on 0.0.0.0 and on [::], which together are one claim
  # on both stacks, and the manifest takes a port once.
  mergeOverlaps = builtins.foldl' (
    kept: p:
    let
      hits = builtins.filter (overlaps p) kept;
      widest = if builtins.all (covers p) hits then p else builtins.head hits;
      first = builtins.head hits;
    in
    if hits == [ ] then
      kept ++ [ p ]
    else
      builtins.concatMap (q: if q == first then [ widest ] else if builtins.elem q hits then [ ] else [ q ]) kept
  ) [ ];

  # The address a `host` option binds, as the manifest wants it: "[::]" ->
  # "::", "localhost" -> "127.0.0.1", another host name -> "" (all
  # addresses: claim too much rather than too little).
  hostAddress =
    host:
    let
      bracketed = builtins.match "\\[(.*)]" host;
    in
    if bracketed != null then
      builtins.head bracketed
    else if host == "localhost" then
      "127.0.0.1"
    else if builtins.match "[0-9.]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*" host != null then
      host
    else
      "";

  # "8080/tcp", or "8080/tcp on 127.0.0.1".
  showPort = p: "${toString p.port}/${p.protocol or "tcp"}" + (if (p.address or "") == "" then "" else " on ${p.address}");
}
