/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`test/nat/nft-plan.test.ts > TAP > an IPv6-only network: IPv6 elements only, no localnet, no IPv4 masquerade > an IPv6-only network 1`] = `
route_localnet=1 on: (none)
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net5" }
add element inet ferry external { "fy-net5" }
add element inet ferry icc { "fy-net5" . "fy-net5" : accept }
add element inet ferry subnets6 { "fy-net5" . fd00:5::/64 }
add element inet ferry masq6 { fd00:5::/64 }
add element inet ferry host_port6 { 2001:db8::5 . udp . 5353 : fd00:5::2 . 53 }
add element inet ferry host_keep6 { 2001:db8::5 . tcp . 50000-50002 : fd00:5::2 }
add element inet ferry any_port6 { sctp . 9000 : fd00:5::2 . 9000, tcp . 8080 : fd00:5::2 . 80 }
add element inet ferry any_range6 { tcp . 40000-40004 : fd00:5::2 . 22 }
add element inet ferry any_keep6 { tcp . 20000-20199 : fd00:5::2 }

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables > icc off 1`] = `
route_localnet=1 on: (none)
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net1" }
add element inet ferry external { "fy-net1" }
add element inet ferry localnet { "fy-net1" }
add element inet ferry icc { "fy-net1" . "fy-net1" : drop }
add element inet ferry subnets { "fy-net1" . 10.21.0.0/24 }
add element inet ferry masq { 10.21.0.0/24 }

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables > internal network publishes nothing 1`] = `
route_localnet=1 on: (none)
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net3" }
add element inet ferry internal { "fy-net3" }
add element inet ferry icc { "fy-net3" . "fy-net3" : accept }

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables > internal network with icc off 1`] = `
route_localnet=1 on: (none)
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net3" }
add element inet ferry internal { "fy-net3" }
add element inet ferry icc { "fy-net3" . "fy-net3" : drop }

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables > links: only on the icc-off network 1`] = `
route_localnet=1 on: (none)
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net1", "fy-net2" }
add element inet ferry external { "fy-net1", "fy-net2" }
add element inet ferry localnet { "fy-net1", "fy-net2" }
add element inet ferry icc { "fy-net1" . "fy-net1" : accept, "fy-net2" . "fy-net2" : drop }
add element inet ferry subnets { "fy-net1" . 10.21.0.0/24, "fy-net2" . 10.22.0.0/24 }
add element inet ferry masq { 10.21.0.0/24, 10.22.0.0/24 }
add element inet ferry link_to { "fy-net2" . 10.22.0.2 . 10.22.0.3 . tcp . 5432, "fy-net2" . 10.22.0.2 . 10.22.0.3 . udp . 53 }
add element inet ferry link_from { "fy-net2" . 10.22.0.3 . 10.22.0.2 . tcp . 5432, "fy-net2" . 10.22.0.3 . 10.22.0.2 . udp . 53 }

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables > masquerade off 1`] = `
route_localnet=1 on: (none)
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net1" }
add element inet ferry external { "fy-net1" }
add element inet ferry localnet { "fy-net1" }
add element inet ferry icc { "fy-net1" . "fy-net1" : accept }
add element inet ferry subnets { "fy-net1" . 10.21.0.0/24 }

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables > no network: the fixed chains and empty sets 1`] = `
route_localnet=1 on: (none)
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables > one network, icc, masquerade 1`] = `
route_localnet=1 on: (none)
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net1" }
add element inet ferry external { "fy-net1" }
add element inet ferry localnet { "fy-net1" }
add element inet ferry icc { "fy-net1" . "fy-net1" : accept }
add element inet ferry subnets { "fy-net1" . 10.21.0.0/24 }
add element inet ferry masq { 10.21.0.0/24 }

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables > only a specific host IP: no route_localnet 1`] = `
route_localnet=1 on: (none)
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net1" }
add element inet ferry external { "fy-net1" }
add element inet ferry localnet { "fy-net1" }
add element inet ferry icc { "fy-net1" . "fy-net1" : accept }
add element inet ferry subnets { "fy-net1" . 10.21.0.0/24 }
add element inet ferry masq { 10.21.0.0/24 }
add element inet ferry host_port { 192.0.2.10 . tcp . 8080 : 10.21.0.2 . 80 }

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables > outbound address: SNAT instead of masquerade 1`] = `
route_localnet=1 on: (none)
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net1" }
add element inet ferry external { "fy-net1" }
add element inet ferry localnet { "fy-net1" }
add element inet ferry icc { "fy-net1" . "fy-net1" : accept }
add element inet ferry subnets { "fy-net1" . 10.21.0.0/24 }
add element inet ferry snat_to { 10.21.0.0/24 : 198.51.100.7 }

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables > same without localhost publishing 1`] = `
route_localnet=1 on: (none)
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output ip daddr != 127.0.0.0/8 fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net1" }
add element inet ferry external { "fy-net1" }
add element inet ferry icc { "fy-net1" . "fy-net1" : accept }
add element inet ferry subnets { "fy-net1" . 10.21.0.0/24 }
add element inet ferry masq { 10.21.0.0/24 }
add element inet ferry host_port { 127.0.0.1 . tcp . 8443 : 10.21.0.2 . 443, 127.0.0.1 . udp . 30000 : 10.21.0.2 . 100, 127.0.0.1 . udp . 30001 : 10.21.0.2 . 101, 127.0.0.1 . udp . 30002 : 10.21.0.2 . 102, 127.0.0.1 . udp . 30003 : 10.21.0.2 . 103, 192.0.2.10 . udp . 5353 : 10.21.0.2 . 53 }
add element inet ferry any_port { sctp . 9000 : 10.21.0.2 . 9000, tcp . 8080 : 10.21.0.2 . 80 }
add element inet ferry any_range { tcp . 40000-40004 : 10.21.0.2 . 22 }
add element inet ferry any_keep { tcp . 20000-20199 : 10.21.0.2 }
add element inet ferry lo_only { 10.21.0.2 . tcp . 443, 10.21.0.2 . udp . 100-103 }
add element inet ferry lo_from { "fy-net1" . 10.21.0.2 . tcp . 443, "fy-net1" . 10.21.0.2 . udp . 100-103 }

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables > tcp/udp/sctp, host IP given / 127.0.0.1 / empty, ranges with and without offset 1`] = `
route_localnet=1 on: fy-net1
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net1" }
add element inet ferry external { "fy-net1" }
add element inet ferry localnet { "fy-net1" }
add element inet ferry icc { "fy-net1" . "fy-net1" : accept }
add element inet ferry subnets { "fy-net1" . 10.21.0.0/24 }
add element inet ferry masq { 10.21.0.0/24 }
add element inet ferry host_port { 127.0.0.1 . tcp . 8443 : 10.21.0.2 . 443, 127.0.0.1 . udp . 30000 : 10.21.0.2 . 100, 127.0.0.1 . udp . 30001 : 10.21.0.2 . 101, 127.0.0.1 . udp . 30002 : 10.21.0.2 . 102, 127.0.0.1 . udp . 30003 : 10.21.0.2 . 103, 192.0.2.10 . udp . 5353 : 10.21.0.2 . 53 }
add element inet ferry any_port { sctp . 9000 : 10.21.0.2 . 9000, tcp . 8080 : 10.21.0.2 . 80 }
add element inet ferry any_range { tcp . 40000-40004 : 10.21.0.2 . 22 }
add element inet ferry any_keep { tcp . 20000-20199 : 10.21.0.2 }
add element inet ferry lo_only { 10.21.0.2 . tcp . 443, 10.21.0.2 . udp . 100-103 }
add element inet ferry lo_from { "fy-net1" . 10.21.0.2 . tcp . 443, "fy-net1" . 10.21.0.2 . udp . 100-103 }

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables, dual-stack > dual-stack network (IPv6 nat mode): both families published 1`] = `
route_localnet=1 on: fy-net1
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net1" }
add element inet ferry external { "fy-net1" }
add element inet ferry localnet { "fy-net1" }
add element inet ferry icc { "fy-net1" . "fy-net1" : accept }
add element inet ferry subnets { "fy-net1" . 10.21.0.0/24 }
add element inet ferry masq { 10.21.0.0/24 }
add element inet ferry host_port { 192.0.2.10 . udp . 5353 : 10.21.0.2 . 53 }
add element inet ferry host_keep { 192.0.2.10 . tcp . 50000-50002 : 10.21.0.2 }
add element inet ferry any_port { sctp . 9000 : 10.21.0.2 . 9000, tcp . 8080 : 10.21.0.2 . 80 }
add element inet ferry any_range { tcp . 40000-40004 : 10.21.0.2 . 22 }
add element inet ferry any_keep { tcp . 20000-20199 : 10.21.0.2 }
add element inet ferry subnets6 { "fy-net1" . fd00:1::/64 }
add element inet ferry masq6 { fd00:1::/64 }
add element inet ferry host_port6 { 2001:db8::5 . udp . 5353 : fd00:1::2 . 53 }
add element inet ferry host_keep6 { 2001:db8::5 . tcp . 50000-50002 : fd00:1::2 }
add element inet ferry any_port6 { sctp . 9000 : fd00:1::2 . 9000, tcp . 8080 : fd00:1::2 . 80 }
add element inet ferry any_range6 { tcp . 40000-40004 : fd00:1::2 . 22 }
add element inet ferry any_keep6 { tcp . 20000-20199 : fd00:1::2 }

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables, dual-stack > IPv6 outbound address, icc off 1`] = `
route_localnet=1 on: (none)
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net3" }
add element inet ferry external { "fy-net3" }
add element inet ferry localnet { "fy-net3" }
add element inet ferry icc { "fy-net3" . "fy-net3" : drop }
add element inet ferry subnets { "fy-net3" . 10.23.0.0/24 }
add element inet ferry masq { 10.23.0.0/24 }
add element inet ferry subnets6 { "fy-net3" . fd00:3::/64 }
add element inet ferry snat_to6 { fd00:3::/64 : 2001:db8::7 }

`

exports[`test/nat/nft-plan.test.ts > TAP > golden tables, dual-stack > IPv6 routed mode: no masquerade, no DNAT, published container ports opened 1`] = `
route_localnet=1 on: fy-net2
add table inet ferry
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade
add element inet ferry bridges { "fy-net2" }
add element inet ferry external { "fy-net2" }
add element inet ferry localnet { "fy-net2" }
add element inet ferry icc { "fy-net2" . "fy-net2" : accept }
add element inet ferry subnets { "fy-net2" . 10.22.0.0/24 }
add element inet ferry masq { 10.22.0.0/24 }
add element inet ferry host_port { 192.0.2.10 . udp . 5353 : 10.22.0.2 . 53 }
add element inet ferry host_keep { 192.0.2.10 . tcp . 50000-50002 : 10.22.0.2 }
add element inet ferry any_port { sctp . 9000 : 10.22.0.2 . 9000, tcp . 8080 : 10.22.0.2 . 80 }
add element inet ferry any_range { tcp . 40000-40004 : 10.22.0.2 . 22 }
add element inet ferry any_keep { tcp . 20000-20199 : 10.22.0.2 }
add element inet ferry subnets6 { "fy-net2" . fd00:2::/64 }
add element inet ferry routed6 { "fy-net2" . fd00:2::2 . sctp . 9000, "fy-net2" . fd00:2::2 . tcp . 20000-20199, "fy-net2" . fd00:2::2 . tcp . 22, "fy-net2" . fd00:2::2 . tcp . 50000-50002, "fy-net2" . fd00:2::2 . tcp . 80, "fy-net2" . fd00:2::2 . udp . 53 }

`

exports[`test/nat/nft-plan.test.ts > TAP > rewrite and teardown batches > a user chain with rules stays 1`] = `
flush chain inet ferry nat-prerouting
delete chain inet ferry nat-prerouting
delete set inet ferry external
delete map inet ferry any_keep

`

exports[`test/nat/nft-plan.test.ts > TAP > rewrite and teardown batches > rewrite over a partial table: flush and refill, user chain untouched 1`] = `
add table inet ferry
flush chain inet ferry nat-prerouting
flush set inet ferry external
flush map inet ferry any_keep
add set inet ferry bridges { type ifname; }
add set inet ferry external { type ifname; }
add set inet ferry internal { type ifname; }
add set inet ferry localnet { type ifname; }
add set inet ferry mss_clamp { type ifname; }
add map inet ferry icc { type ifname . ifname : verdict; }
add set inet ferry subnets { type ifname . ipv4_addr; flags interval; }
add set inet ferry masq { type ipv4_addr; flags interval; }
add map inet ferry snat_to { type ipv4_addr : ipv4_addr; flags interval; }
add set inet ferry link_to { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add set inet ferry link_from { type ifname . ipv4_addr . ipv4_addr . inet_proto . inet_service; }
add map inet ferry host_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry host_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry host_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
add map inet ferry any_port { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet ferry any_range { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
add map inet ferry any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
add set inet ferry routed { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry subnets6 { type ifname . ipv6_addr; flags interval; }
add set inet ferry masq6 { type ipv6_addr; flags interval; }
add map inet ferry snat_to6 { type ipv6_addr : ipv6_addr; flags interval; }
add set inet ferry link_to6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add set inet ferry link_from6 { type ifname . ipv6_addr . ipv6_addr . inet_proto . inet_service; }
add map inet ferry host_port6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry host_range6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry host_keep6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
add map inet ferry any_port6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet ferry any_range6 { type inet_proto . inet_service : ipv6_addr . inet_service; flags interval; }
add map inet ferry any_keep6 { type inet_proto . inet_service : ipv6_addr; flags interval; }
add set inet ferry routed6 { type ifname . ipv6_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_only { type ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ferry lo_from { type ifname . ipv4_addr . inet_proto . inet_service; flags interval; }
add chain inet ferry user
add chain inet ferry publish
add chain inet ferry raw-prerouting { type filter hook prerouting priority raw - 10; policy accept; }
add chain inet ferry nat-prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }
add chain inet ferry nat-output { type nat hook output priority -110; policy accept; }
add chain inet ferry filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain inet ferry filter-input { type filter hook input priority filter - 10; policy accept; }
add chain inet ferry nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept; }
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @host_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_port
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_range
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @any_keep
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @host_keep6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_port6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_range6
add rule inet ferry publish meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @any_keep6
add rule inet ferry raw-prerouting ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop
add rule inet ferry nat-prerouting fib daddr type local jump publish
add rule inet ferry nat-output ip6 daddr ::1 return
add rule inet ferry nat-output fib daddr type local jump publish
add rule inet ferry filter-forward iifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward oifname @bridges meta mark set meta mark | 0x01000000
add rule inet ferry filter-forward jump user
add rule inet ferry filter-forward oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th dport @link_to accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th dport @link_to6 accept
add rule inet ferry filter-forward iifname . ip saddr . ip daddr . meta l4proto . th sport @link_from accept
add rule inet ferry filter-forward iifname . ip6 saddr . ip6 daddr . meta l4proto . th sport @link_from6 accept
add rule inet ferry filter-forward iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
add rule inet ferry filter-forward iifname @internal iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname @internal drop
add rule inet ferry filter-forward oifname @internal drop
add rule inet ferry filter-forward oifname @external ct state established,related accept
add rule inet ferry filter-forward oifname @external ct status dnat accept
add rule inet ferry filter-forward iifname . oifname vmap @icc
add rule inet ferry filter-forward iifname != @bridges oifname . ip daddr . meta l4proto . th dport @routed accept
add rule inet ferry filter-forward iifname != @bridges oifname . ip6 daddr . meta l4proto . th dport @routed6 accept
add rule inet ferry filter-forward oifname @external drop
add rule inet ferry filter-forward iifname @external accept
add rule inet ferry filter-input udp dport 4799 iifname != "fyw-*" drop
add rule inet ferry filter-input iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop
add rule inet ferry nat-postrouting ct status dnat oifname . ip saddr @subnets masquerade
add rule inet ferry nat-postrouting ct status dnat oifname . ip6 saddr @subnets6 masquerade
add rule inet ferry nat-postrouting oifname . ip saddr @subnets return
add rule inet ferry nat-postrouting oifname . ip6 saddr @subnets6 return
add rule inet ferry nat-postrouting snat ip to ip saddr map @snat_to
add rule inet ferry nat-postrouting snat ip6 to ip6 saddr map @snat_to6
add rule inet ferry nat-postrouting ip saddr @masq masquerade
add rule inet ferry nat-postrouting ip6 saddr @masq6 masquerade
add rule inet ferry nat-postrouting oifname @localnet ip saddr 127.0.0.0/8 masquerade

`
