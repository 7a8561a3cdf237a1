# Lightscale built with its own Makefile: lightscale (CLI + agent, BPF skeletons inside),
# lightscale-control and lightscale-relay. The Makefile checks Debian packages through
# scripts/deps.sh; under Nix the inputs come from nixpkgs, so that check is stubbed out.
{ lib
, stdenv
, src
, pkg-config
, clang
, llvm
, bpftools
, libbpf
, elfutils
, zlib
, libmnl
, libsodium
, postgresql
, libmicrohttpd
, jansson
, curl
, gnutls
, cmocka
, wireguard-tools
}:

stdenv.mkDerivation {
  pname = "lightscale";
  version = "0.1.0";
  inherit src;

  nativeBuildInputs = [ pkg-config clang llvm bpftools postgresql ];
  buildInputs = [ libbpf elfutils zlib libmnl libsodium postgresql libmicrohttpd jansson curl gnutls cmocka ];

  # clang builds BPF objects (-target bpf); the hardening flags are for the host compiler.
  hardeningDisable = [ "zerocallusedregs" "stackprotector" ];

  postPatch = ''
    printf '#!/bin/sh\nexit 0\n' > scripts/deps.sh
    patchShebangs scripts tests
  '';

  makeFlags = [ "BUILD=build" "CLANG=clang" "BPFTOOL=bpftool" ];

  installPhase = ''
    runHook preInstall
    mkdir -p $out/bin
    for b in lightscale lightscale-control lightscale-relay lightscale-wg; do
      if [ -x build/$b ]; then install -m755 build/$b $out/bin/$b; fi
    done
    test -x $out/bin/lightscale
    runHook postInstall
  '';

  passthru.runtimeTools = [ wireguard-tools bpftools ];

  meta = {
    description = "Self-hosted mesh VPN: kernel WireGuard with an XDP/TC BPF data plane";
    license = lib.licenses.gpl2Only;
    platforms = lib.platforms.linux;
    mainProgram = "lightscale";
  };
}
