/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`test/nat/plan.test.ts > TAP > an IPv6-only network: IPv6 as on a dual-stack network, nothing of it in the IPv4 NAT, its bridge isolated in both > IPv4: an IPv6-only network beside a dual-stack one 1`] = `
*raw
:FERRY-RAW - [0:0]
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-HAIRPIN -s 10.21.0.0/24 -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-A FERRY-POSTROUTING -s 10.21.0.0/24 ! -o fy-net1 -m comment --comment "ferry:masq 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -s 127.0.0.0/8 -o fy-net1 -m comment --comment "ferry:localnet 111111111111" -j MASQUERADE
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-PUBLISH -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 111111111111" -j ACCEPT
-A FERRY-PUBLISH -o fy-net5 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 555555555555" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -o fy-net1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 111111111111" -j ACCEPT
-A FERRY-FORWARD -o fy-net5 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 555555555555" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-FORWARD ! -i fy-net1 -o fy-net1 -m comment --comment "ferry:isolate 111111111111" -j DROP
-A FERRY-FORWARD ! -i fy-net5 -o fy-net5 -m comment --comment "ferry:isolate 555555555555" -j DROP
-A FERRY-FORWARD -i fy-net1 -o fy-net1 -m comment --comment "ferry:icc 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net5 -o fy-net5 -m comment --comment "ferry:icc 555555555555" -j ACCEPT
-A FERRY-FORWARD -i fy-net1 ! -o fy-net1 -m comment --comment "ferry:out 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net5 ! -o fy-net5 -m comment --comment "ferry:out 555555555555" -j ACCEPT
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-A FERRY-INPUT -d 127.0.0.0/8 -i fy-net1 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "ferry:localnet 111111111111" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > an IPv6-only network: IPv6 as on a dual-stack network, nothing of it in the IPv4 NAT, its bridge isolated in both > IPv6: an IPv6-only network beside a dual-stack one 1`] = `
*raw
:FERRY-RAW - [0:0]
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-DNAT-e -p tcp -m tcp --dport 8080 -m comment --comment "ferry:ep e50000000000" -j DNAT --to-destination [fd00:5::2]:80
-A FERRY-DNAT-e -d 2001:db8::5/128 -p udp -m udp --dport 5353 -m comment --comment "ferry:ep e50000000000" -j DNAT --to-destination [fd00:5::2]:53
-A FERRY-DNAT-e -p tcp -m tcp --dport 20000:20099 -m comment --comment "ferry:ep e50000000000" -j DNAT --to-destination [fd00:5::2]:20000-20099
-A FERRY-DNAT-e -p tcp -m tcp --dport 40000:40004 -m comment --comment "ferry:ep e50000000000" -j DNAT --to-destination [fd00:5::2]:22
-A FERRY-DNAT-e -d 2001:db8::5/128 -p sctp -m sctp --dport 8000:8009 -m comment --comment "ferry:ep e50000000000" -j DNAT --to-destination [fd00:5::2]:80-89/8000
-A FERRY-HAIRPIN -s fd00:1::/64 -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 111111111111" -j MASQUERADE
-A FERRY-HAIRPIN -s fd00:5::/64 -o fy-net5 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 555555555555" -j MASQUERADE
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-A FERRY-POSTROUTING -s fd00:1::/64 ! -o fy-net1 -m comment --comment "ferry:masq 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -s fd00:5::/64 ! -o fy-net5 -m comment --comment "ferry:masq 555555555555" -j MASQUERADE
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 ! -d ::1/128 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-PUBLISH -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 111111111111" -j ACCEPT
-A FERRY-PUBLISH -o fy-net5 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 555555555555" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -o fy-net1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 111111111111" -j ACCEPT
-A FERRY-FORWARD -o fy-net5 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 555555555555" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-FORWARD ! -i fy-net1 -o fy-net1 -m comment --comment "ferry:isolate 111111111111" -j DROP
-A FERRY-FORWARD ! -i fy-net5 -o fy-net5 -m comment --comment "ferry:isolate 555555555555" -j DROP
-A FERRY-FORWARD -i fy-net1 -o fy-net1 -m comment --comment "ferry:icc 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net5 -o fy-net5 -m comment --comment "ferry:icc 555555555555" -j ACCEPT
-A FERRY-FORWARD -i fy-net1 ! -o fy-net1 -m comment --comment "ferry:out 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net5 ! -o fy-net5 -m comment --comment "ferry:out 555555555555" -j ACCEPT
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > batches > one more endpoint: only its own -A lines > must match snapshot 1`] = `
*nat
-A FERRY-DNAT-7 -p tcp -m tcp --dport 9000 -m comment --comment "ferry:ep e30000000000" -j DNAT --to-destination 10.22.0.2:90
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > batches > stale chains and jumps of an older run are removed, duplicate jumps collapsed > must match snapshot 1`] = `
*nat
:FERRY-OLD - [0:0]
-D PREROUTING -m addrtype --dst-type LOCAL -j FERRY-DNAT
-D PREROUTING -j FERRY-OLD
-X FERRY-OLD
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > batches > teardown: everything goes, FERRY-USER only when empty > must match snapshot 1`] = `
*raw
:FERRY-RAW - [0:0]
-D PREROUTING -j FERRY-RAW
-X FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-D PREROUTING -m addrtype --dst-type LOCAL -j FERRY-DNAT
-D OUTPUT -m addrtype --dst-type LOCAL -j FERRY-DNAT
-D POSTROUTING -j FERRY-POSTROUTING
-X FERRY-DNAT
-X FERRY-DNAT-0
-X FERRY-DNAT-1
-X FERRY-DNAT-2
-X FERRY-DNAT-3
-X FERRY-DNAT-4
-X FERRY-DNAT-5
-X FERRY-DNAT-6
-X FERRY-DNAT-7
-X FERRY-DNAT-8
-X FERRY-DNAT-9
-X FERRY-DNAT-a
-X FERRY-DNAT-b
-X FERRY-DNAT-c
-X FERRY-DNAT-d
-X FERRY-DNAT-e
-X FERRY-DNAT-f
-X FERRY-HAIRPIN
-X FERRY-POSTROUTING
COMMIT
*filter
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-D FORWARD -j FERRY-FORWARD
-D INPUT -j FERRY-INPUT
-X FERRY-USER
-X FERRY-PUBLISH
-X FERRY-FORWARD
-X FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > golden plans > icc off 1`] = `
route_localnet=1 on: (none)
*raw
:FERRY-RAW - [0:0]
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-HAIRPIN -s 10.21.0.0/24 -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-A FERRY-POSTROUTING -s 10.21.0.0/24 ! -o fy-net1 -m comment --comment "ferry:masq 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -s 127.0.0.0/8 -o fy-net1 -m comment --comment "ferry:localnet 111111111111" -j MASQUERADE
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-PUBLISH -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -o fy-net1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-FORWARD ! -i fy-net1 -o fy-net1 -m comment --comment "ferry:isolate 111111111111" -j DROP
-A FERRY-FORWARD -i fy-net1 -o fy-net1 -m comment --comment "ferry:icc 111111111111" -j DROP
-A FERRY-FORWARD -i fy-net1 ! -o fy-net1 -m comment --comment "ferry:out 111111111111" -j ACCEPT
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-A FERRY-INPUT -d 127.0.0.0/8 -i fy-net1 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "ferry:localnet 111111111111" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > golden plans > internal network publishes nothing 1`] = `
route_localnet=1 on: (none)
*raw
:FERRY-RAW - [0:0]
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -i fy-net3 -o fy-net3 -m comment --comment "ferry:icc 333333333333" -j ACCEPT
-A FERRY-FORWARD -i fy-net3 -m comment --comment "ferry:internal 333333333333" -j DROP
-A FERRY-FORWARD -o fy-net3 -m comment --comment "ferry:internal 333333333333" -j DROP
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > golden plans > internal network with icc off 1`] = `
route_localnet=1 on: (none)
*raw
:FERRY-RAW - [0:0]
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -i fy-net3 -o fy-net3 -m comment --comment "ferry:icc 333333333333" -j DROP
-A FERRY-FORWARD -i fy-net3 -m comment --comment "ferry:internal 333333333333" -j DROP
-A FERRY-FORWARD -o fy-net3 -m comment --comment "ferry:internal 333333333333" -j DROP
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > golden plans > masquerade off 1`] = `
route_localnet=1 on: (none)
*raw
:FERRY-RAW - [0:0]
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-HAIRPIN -s 10.21.0.0/24 -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-A FERRY-POSTROUTING -s 127.0.0.0/8 -o fy-net1 -m comment --comment "ferry:localnet 111111111111" -j MASQUERADE
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-PUBLISH -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -o fy-net1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-FORWARD ! -i fy-net1 -o fy-net1 -m comment --comment "ferry:isolate 111111111111" -j DROP
-A FERRY-FORWARD -i fy-net1 -o fy-net1 -m comment --comment "ferry:icc 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net1 ! -o fy-net1 -m comment --comment "ferry:out 111111111111" -j ACCEPT
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-A FERRY-INPUT -d 127.0.0.0/8 -i fy-net1 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "ferry:localnet 111111111111" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > golden plans > no network: chains and jumps only 1`] = `
route_localnet=1 on: (none)
*raw
:FERRY-RAW - [0:0]
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > golden plans > one network, icc, masquerade 1`] = `
route_localnet=1 on: (none)
*raw
:FERRY-RAW - [0:0]
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-HAIRPIN -s 10.21.0.0/24 -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-A FERRY-POSTROUTING -s 10.21.0.0/24 ! -o fy-net1 -m comment --comment "ferry:masq 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -s 127.0.0.0/8 -o fy-net1 -m comment --comment "ferry:localnet 111111111111" -j MASQUERADE
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-PUBLISH -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -o fy-net1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-FORWARD ! -i fy-net1 -o fy-net1 -m comment --comment "ferry:isolate 111111111111" -j DROP
-A FERRY-FORWARD -i fy-net1 -o fy-net1 -m comment --comment "ferry:icc 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net1 ! -o fy-net1 -m comment --comment "ferry:out 111111111111" -j ACCEPT
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-A FERRY-INPUT -d 127.0.0.0/8 -i fy-net1 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "ferry:localnet 111111111111" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > golden plans > only a specific host IP: no route_localnet 1`] = `
route_localnet=1 on: (none)
*raw
:FERRY-RAW - [0:0]
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-DNAT-f -d 192.0.2.10/32 -p tcp -m tcp --dport 8080 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:80
-A FERRY-HAIRPIN -s 10.21.0.0/24 -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-A FERRY-POSTROUTING -s 10.21.0.0/24 ! -o fy-net1 -m comment --comment "ferry:masq 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -s 127.0.0.0/8 -o fy-net1 -m comment --comment "ferry:localnet 111111111111" -j MASQUERADE
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-PUBLISH -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -o fy-net1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-FORWARD ! -i fy-net1 -o fy-net1 -m comment --comment "ferry:isolate 111111111111" -j DROP
-A FERRY-FORWARD -i fy-net1 -o fy-net1 -m comment --comment "ferry:icc 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net1 ! -o fy-net1 -m comment --comment "ferry:out 111111111111" -j ACCEPT
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-A FERRY-INPUT -d 127.0.0.0/8 -i fy-net1 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "ferry:localnet 111111111111" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > golden plans > outbound address (host_ipv4): SNAT instead of MASQUERADE 1`] = `
route_localnet=1 on: (none)
*raw
:FERRY-RAW - [0:0]
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-HAIRPIN -s 10.21.0.0/24 -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-A FERRY-POSTROUTING -s 10.21.0.0/24 ! -o fy-net1 -m comment --comment "ferry:masq 111111111111" -j SNAT --to-source 198.51.100.7
-A FERRY-POSTROUTING -s 127.0.0.0/8 -o fy-net1 -m comment --comment "ferry:localnet 111111111111" -j MASQUERADE
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-PUBLISH -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -o fy-net1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-FORWARD ! -i fy-net1 -o fy-net1 -m comment --comment "ferry:isolate 111111111111" -j DROP
-A FERRY-FORWARD -i fy-net1 -o fy-net1 -m comment --comment "ferry:icc 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net1 ! -o fy-net1 -m comment --comment "ferry:out 111111111111" -j ACCEPT
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-A FERRY-INPUT -d 127.0.0.0/8 -i fy-net1 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "ferry:localnet 111111111111" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > golden plans > same without localhost publishing 1`] = `
route_localnet=1 on: (none)
*raw
:FERRY-RAW - [0:0]
-A FERRY-RAW -d 10.21.0.2/32 ! -i fy-net1 -p tcp -m tcp --dport 443 -m comment --comment "ferry:ep e10000000000" -j DROP
-A FERRY-RAW -d 10.21.0.2/32 ! -i fy-net1 -p udp -m udp --dport 100:109 -m comment --comment "ferry:ep e10000000000" -j DROP
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-DNAT-f -p tcp -m tcp --dport 8080 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:80
-A FERRY-DNAT-f -d 192.0.2.10/32 -p udp -m udp --dport 5353 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:53
-A FERRY-DNAT-f -p sctp -m sctp --dport 9000 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:9000
-A FERRY-DNAT-f -d 127.0.0.1/32 -p tcp -m tcp --dport 8443 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:443
-A FERRY-DNAT-f -p tcp -m tcp --dport 20000:20999 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:20000-20999
-A FERRY-DNAT-f -d 127.0.0.1/32 -p udp -m udp --dport 30000:30009 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:100-109/30000
-A FERRY-DNAT-f -p tcp -m tcp --dport 40000 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:22
-A FERRY-HAIRPIN -s 10.21.0.0/24 -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-A FERRY-POSTROUTING -s 10.21.0.0/24 ! -o fy-net1 -m comment --comment "ferry:masq 111111111111" -j MASQUERADE
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-PUBLISH -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -o fy-net1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-FORWARD ! -i fy-net1 -o fy-net1 -m comment --comment "ferry:isolate 111111111111" -j DROP
-A FERRY-FORWARD -i fy-net1 -o fy-net1 -m comment --comment "ferry:icc 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net1 ! -o fy-net1 -m comment --comment "ferry:out 111111111111" -j ACCEPT
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > golden plans > tcp/udp/sctp, host IP given / 127.0.0.1 / empty, ranges with and without offset 1`] = `
route_localnet=1 on: fy-net1
*raw
:FERRY-RAW - [0:0]
-A FERRY-RAW -d 10.21.0.2/32 ! -i fy-net1 -p tcp -m tcp --dport 443 -m comment --comment "ferry:ep e10000000000" -j DROP
-A FERRY-RAW -d 10.21.0.2/32 ! -i fy-net1 -p udp -m udp --dport 100:109 -m comment --comment "ferry:ep e10000000000" -j DROP
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-DNAT-f -p tcp -m tcp --dport 8080 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:80
-A FERRY-DNAT-f -d 192.0.2.10/32 -p udp -m udp --dport 5353 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:53
-A FERRY-DNAT-f -p sctp -m sctp --dport 9000 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:9000
-A FERRY-DNAT-f -d 127.0.0.1/32 -p tcp -m tcp --dport 8443 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:443
-A FERRY-DNAT-f -p tcp -m tcp --dport 20000:20999 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:20000-20999
-A FERRY-DNAT-f -d 127.0.0.1/32 -p udp -m udp --dport 30000:30009 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:100-109/30000
-A FERRY-DNAT-f -p tcp -m tcp --dport 40000 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:22
-A FERRY-HAIRPIN -s 10.21.0.0/24 -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-A FERRY-POSTROUTING -s 10.21.0.0/24 ! -o fy-net1 -m comment --comment "ferry:masq 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -s 127.0.0.0/8 -o fy-net1 -m comment --comment "ferry:localnet 111111111111" -j MASQUERADE
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-PUBLISH -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -o fy-net1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-FORWARD ! -i fy-net1 -o fy-net1 -m comment --comment "ferry:isolate 111111111111" -j DROP
-A FERRY-FORWARD -i fy-net1 -o fy-net1 -m comment --comment "ferry:icc 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net1 ! -o fy-net1 -m comment --comment "ferry:out 111111111111" -j ACCEPT
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-A FERRY-INPUT -d 127.0.0.0/8 -i fy-net1 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "ferry:localnet 111111111111" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > golden plans > two networks and an internal one: isolation 1`] = `
route_localnet=1 on: fy-net1 fy-net2
*raw
:FERRY-RAW - [0:0]
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-DNAT-b -p udp -m udp --dport 8081 -m comment --comment "ferry:ep e20000000000" -j DNAT --to-destination 10.22.0.2:81
-A FERRY-DNAT-f -p tcp -m tcp --dport 8080 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:80
-A FERRY-HAIRPIN -s 10.21.0.0/24 -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 111111111111" -j MASQUERADE
-A FERRY-HAIRPIN -s 10.22.0.0/24 -o fy-net2 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 222222222222" -j MASQUERADE
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-A FERRY-POSTROUTING -s 10.21.0.0/24 ! -o fy-net1 -m comment --comment "ferry:masq 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -s 127.0.0.0/8 -o fy-net1 -m comment --comment "ferry:localnet 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -s 127.0.0.0/8 -o fy-net2 -m comment --comment "ferry:localnet 222222222222" -j MASQUERADE
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-PUBLISH -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 111111111111" -j ACCEPT
-A FERRY-PUBLISH -o fy-net2 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 222222222222" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -i fy-net3 -o fy-net3 -m comment --comment "ferry:icc 333333333333" -j ACCEPT
-A FERRY-FORWARD -i fy-net3 -m comment --comment "ferry:internal 333333333333" -j DROP
-A FERRY-FORWARD -o fy-net3 -m comment --comment "ferry:internal 333333333333" -j DROP
-A FERRY-FORWARD -o fy-net1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 111111111111" -j ACCEPT
-A FERRY-FORWARD -o fy-net2 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 222222222222" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-FORWARD ! -i fy-net1 -o fy-net1 -m comment --comment "ferry:isolate 111111111111" -j DROP
-A FERRY-FORWARD ! -i fy-net2 -o fy-net2 -m comment --comment "ferry:isolate 222222222222" -j DROP
-A FERRY-FORWARD -i fy-net1 -o fy-net1 -m comment --comment "ferry:icc 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net2 -o fy-net2 -m comment --comment "ferry:icc 222222222222" -j DROP
-A FERRY-FORWARD -i fy-net1 ! -o fy-net1 -m comment --comment "ferry:out 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net2 ! -o fy-net2 -m comment --comment "ferry:out 222222222222" -j ACCEPT
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-A FERRY-INPUT -d 127.0.0.0/8 -i fy-net1 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "ferry:localnet 111111111111" -j DROP
-A FERRY-INPUT -d 127.0.0.0/8 -i fy-net2 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "ferry:localnet 222222222222" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > golden plans, both families > IPv4: nat mode, routed mode (IPv6), an IPv4-only network, an IPv6 outbound address 1`] = `
*raw
:FERRY-RAW - [0:0]
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-DNAT-b -p tcp -m tcp --dport 8080 -m comment --comment "ferry:ep e20000000000" -j DNAT --to-destination 10.22.0.2:80
-A FERRY-DNAT-b -d 192.0.2.10/32 -p udp -m udp --dport 5353 -m comment --comment "ferry:ep e20000000000" -j DNAT --to-destination 10.22.0.2:53
-A FERRY-DNAT-b -p tcp -m tcp --dport 20000:20099 -m comment --comment "ferry:ep e20000000000" -j DNAT --to-destination 10.22.0.2:20000-20099
-A FERRY-DNAT-b -p tcp -m tcp --dport 40000:40004 -m comment --comment "ferry:ep e20000000000" -j DNAT --to-destination 10.22.0.2:22
-A FERRY-DNAT-b -d 192.0.2.10/32 -p sctp -m sctp --dport 8000:8009 -m comment --comment "ferry:ep e20000000000" -j DNAT --to-destination 10.22.0.2:80-89/8000
-A FERRY-DNAT-f -p tcp -m tcp --dport 8080 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:80
-A FERRY-DNAT-f -d 192.0.2.10/32 -p udp -m udp --dport 5353 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:53
-A FERRY-DNAT-f -p tcp -m tcp --dport 20000:20099 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:20000-20099
-A FERRY-DNAT-f -p tcp -m tcp --dport 40000:40004 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:22
-A FERRY-DNAT-f -d 192.0.2.10/32 -p sctp -m sctp --dport 8000:8009 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination 10.21.0.2:80-89/8000
-A FERRY-HAIRPIN -s 10.21.0.0/24 -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 111111111111" -j MASQUERADE
-A FERRY-HAIRPIN -s 10.22.0.0/24 -o fy-net2 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 222222222222" -j MASQUERADE
-A FERRY-HAIRPIN -s 10.23.0.0/24 -o fy-net3 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 333333333333" -j MASQUERADE
-A FERRY-HAIRPIN -s 10.24.0.0/24 -o fy-net4 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 444444444444" -j MASQUERADE
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-A FERRY-POSTROUTING -s 10.21.0.0/24 ! -o fy-net1 -m comment --comment "ferry:masq 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -s 10.22.0.0/24 ! -o fy-net2 -m comment --comment "ferry:masq 222222222222" -j MASQUERADE
-A FERRY-POSTROUTING -s 10.23.0.0/24 ! -o fy-net3 -m comment --comment "ferry:masq 333333333333" -j MASQUERADE
-A FERRY-POSTROUTING -s 10.24.0.0/24 ! -o fy-net4 -m comment --comment "ferry:masq 444444444444" -j MASQUERADE
-A FERRY-POSTROUTING -s 127.0.0.0/8 -o fy-net1 -m comment --comment "ferry:localnet 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -s 127.0.0.0/8 -o fy-net2 -m comment --comment "ferry:localnet 222222222222" -j MASQUERADE
-A FERRY-POSTROUTING -s 127.0.0.0/8 -o fy-net3 -m comment --comment "ferry:localnet 333333333333" -j MASQUERADE
-A FERRY-POSTROUTING -s 127.0.0.0/8 -o fy-net4 -m comment --comment "ferry:localnet 444444444444" -j MASQUERADE
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-PUBLISH -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 111111111111" -j ACCEPT
-A FERRY-PUBLISH -o fy-net2 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 222222222222" -j ACCEPT
-A FERRY-PUBLISH -o fy-net3 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 333333333333" -j ACCEPT
-A FERRY-PUBLISH -o fy-net4 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 444444444444" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -o fy-net1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 111111111111" -j ACCEPT
-A FERRY-FORWARD -o fy-net2 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 222222222222" -j ACCEPT
-A FERRY-FORWARD -o fy-net3 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 333333333333" -j ACCEPT
-A FERRY-FORWARD -o fy-net4 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 444444444444" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-FORWARD ! -i fy-net1 -o fy-net1 -m comment --comment "ferry:isolate 111111111111" -j DROP
-A FERRY-FORWARD ! -i fy-net2 -o fy-net2 -m comment --comment "ferry:isolate 222222222222" -j DROP
-A FERRY-FORWARD ! -i fy-net3 -o fy-net3 -m comment --comment "ferry:isolate 333333333333" -j DROP
-A FERRY-FORWARD ! -i fy-net4 -o fy-net4 -m comment --comment "ferry:isolate 444444444444" -j DROP
-A FERRY-FORWARD -i fy-net1 -o fy-net1 -m comment --comment "ferry:icc 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net2 -o fy-net2 -m comment --comment "ferry:icc 222222222222" -j DROP
-A FERRY-FORWARD -i fy-net3 -o fy-net3 -m comment --comment "ferry:icc 333333333333" -j ACCEPT
-A FERRY-FORWARD -i fy-net4 -o fy-net4 -m comment --comment "ferry:icc 444444444444" -j ACCEPT
-A FERRY-FORWARD -i fy-net1 ! -o fy-net1 -m comment --comment "ferry:out 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net2 ! -o fy-net2 -m comment --comment "ferry:out 222222222222" -j ACCEPT
-A FERRY-FORWARD -i fy-net3 ! -o fy-net3 -m comment --comment "ferry:out 333333333333" -j ACCEPT
-A FERRY-FORWARD -i fy-net4 ! -o fy-net4 -m comment --comment "ferry:out 444444444444" -j ACCEPT
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-A FERRY-INPUT -d 127.0.0.0/8 -i fy-net1 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "ferry:localnet 111111111111" -j DROP
-A FERRY-INPUT -d 127.0.0.0/8 -i fy-net2 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "ferry:localnet 222222222222" -j DROP
-A FERRY-INPUT -d 127.0.0.0/8 -i fy-net3 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "ferry:localnet 333333333333" -j DROP
-A FERRY-INPUT -d 127.0.0.0/8 -i fy-net4 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "ferry:localnet 444444444444" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`

exports[`test/nat/plan.test.ts > TAP > golden plans, both families > IPv6: nat mode, routed mode (IPv6), an IPv4-only network, an IPv6 outbound address 1`] = `
*raw
:FERRY-RAW - [0:0]
-I PREROUTING 1 -j FERRY-RAW
COMMIT
*nat
:FERRY-DNAT - [0:0]
:FERRY-DNAT-0 - [0:0]
:FERRY-DNAT-1 - [0:0]
:FERRY-DNAT-2 - [0:0]
:FERRY-DNAT-3 - [0:0]
:FERRY-DNAT-4 - [0:0]
:FERRY-DNAT-5 - [0:0]
:FERRY-DNAT-6 - [0:0]
:FERRY-DNAT-7 - [0:0]
:FERRY-DNAT-8 - [0:0]
:FERRY-DNAT-9 - [0:0]
:FERRY-DNAT-a - [0:0]
:FERRY-DNAT-b - [0:0]
:FERRY-DNAT-c - [0:0]
:FERRY-DNAT-d - [0:0]
:FERRY-DNAT-e - [0:0]
:FERRY-DNAT-f - [0:0]
:FERRY-HAIRPIN - [0:0]
:FERRY-POSTROUTING - [0:0]
-A FERRY-DNAT -j FERRY-DNAT-0
-A FERRY-DNAT -j FERRY-DNAT-1
-A FERRY-DNAT -j FERRY-DNAT-2
-A FERRY-DNAT -j FERRY-DNAT-3
-A FERRY-DNAT -j FERRY-DNAT-4
-A FERRY-DNAT -j FERRY-DNAT-5
-A FERRY-DNAT -j FERRY-DNAT-6
-A FERRY-DNAT -j FERRY-DNAT-7
-A FERRY-DNAT -j FERRY-DNAT-8
-A FERRY-DNAT -j FERRY-DNAT-9
-A FERRY-DNAT -j FERRY-DNAT-a
-A FERRY-DNAT -j FERRY-DNAT-b
-A FERRY-DNAT -j FERRY-DNAT-c
-A FERRY-DNAT -j FERRY-DNAT-d
-A FERRY-DNAT -j FERRY-DNAT-e
-A FERRY-DNAT -j FERRY-DNAT-f
-A FERRY-DNAT-f -p tcp -m tcp --dport 8080 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination [fd00:1::2]:80
-A FERRY-DNAT-f -d 2001:db8::5/128 -p udp -m udp --dport 5353 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination [fd00:1::2]:53
-A FERRY-DNAT-f -p tcp -m tcp --dport 20000:20099 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination [fd00:1::2]:20000-20099
-A FERRY-DNAT-f -p tcp -m tcp --dport 40000:40004 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination [fd00:1::2]:22
-A FERRY-DNAT-f -d 2001:db8::5/128 -p sctp -m sctp --dport 8000:8009 -m comment --comment "ferry:ep e10000000000" -j DNAT --to-destination [fd00:1::2]:80-89/8000
-A FERRY-HAIRPIN -s fd00:1::/64 -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 111111111111" -j MASQUERADE
-A FERRY-HAIRPIN -s fd00:2::/64 -o fy-net2 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 222222222222" -j MASQUERADE
-A FERRY-HAIRPIN -s fd00:4::/64 -o fy-net4 -m conntrack --ctstate DNAT -m comment --comment "ferry:hairpin 444444444444" -j MASQUERADE
-A FERRY-POSTROUTING -m comment --comment "ferry:hairpin" -j FERRY-HAIRPIN
-A FERRY-POSTROUTING -s fd00:1::/64 ! -o fy-net1 -m comment --comment "ferry:masq 111111111111" -j MASQUERADE
-A FERRY-POSTROUTING -s fd00:4::/64 ! -o fy-net4 -m comment --comment "ferry:masq 444444444444" -j SNAT --to-source 2001:db8::9
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I OUTPUT 1 ! -d ::1/128 -m addrtype --dst-type LOCAL -j FERRY-DNAT
-I POSTROUTING 1 -j FERRY-POSTROUTING
COMMIT
*filter
:FERRY-USER - [0:0]
:FERRY-PUBLISH - [0:0]
:FERRY-LINKS - [0:0]
:FERRY-ROUTED - [0:0]
:FERRY-ROUTED-PORTS - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-PUBLISH -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 111111111111" -j ACCEPT
-A FERRY-PUBLISH -o fy-net2 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 222222222222" -j ACCEPT
-A FERRY-PUBLISH -o fy-net3 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 333333333333" -j ACCEPT
-A FERRY-PUBLISH -o fy-net4 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 444444444444" -j ACCEPT
-A FERRY-LINKS -i fy-net2 -o fy-net2 -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m comment --comment "ferry:link-nd 222222222222" -j ACCEPT
-A FERRY-LINKS -i fy-net2 -o fy-net2 -p ipv6-icmp -m icmp6 --icmpv6-type 136 -m comment --comment "ferry:link-nd 222222222222" -j ACCEPT
-A FERRY-LINKS -s fd00:2::2/128 -d fd00:2::3/128 -i fy-net2 -o fy-net2 -p tcp -m tcp --dport 5432 -m comment --comment "ferry:link l6" -j ACCEPT
-A FERRY-LINKS -s fd00:2::3/128 -d fd00:2::2/128 -i fy-net2 -o fy-net2 -p tcp -m tcp --sport 5432 -m comment --comment "ferry:link l6" -j ACCEPT
-A FERRY-ROUTED -i fy-net1 -j RETURN
-A FERRY-ROUTED -i fy-net2 -j RETURN
-A FERRY-ROUTED -i fy-net3 -j RETURN
-A FERRY-ROUTED -i fy-net4 -j RETURN
-A FERRY-ROUTED -j FERRY-ROUTED-PORTS
-A FERRY-ROUTED-PORTS -d fd00:2::2/128 -o fy-net2 -p tcp -m tcp --dport 80 -m comment --comment "ferry:ep e20000000000" -j ACCEPT
-A FERRY-ROUTED-PORTS -d fd00:2::2/128 -o fy-net2 -p udp -m udp --dport 53 -m comment --comment "ferry:ep e20000000000" -j ACCEPT
-A FERRY-ROUTED-PORTS -d fd00:2::2/128 -o fy-net2 -p tcp -m tcp --dport 20000:20099 -m comment --comment "ferry:ep e20000000000" -j ACCEPT
-A FERRY-ROUTED-PORTS -d fd00:2::2/128 -o fy-net2 -p tcp -m tcp --dport 22 -m comment --comment "ferry:ep e20000000000" -j ACCEPT
-A FERRY-ROUTED-PORTS -d fd00:2::2/128 -o fy-net2 -p sctp -m sctp --dport 80:89 -m comment --comment "ferry:ep e20000000000" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -m comment --comment "ferry:links" -j FERRY-LINKS
-A FERRY-FORWARD -o fy-net1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 111111111111" -j ACCEPT
-A FERRY-FORWARD -o fy-net2 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 222222222222" -j ACCEPT
-A FERRY-FORWARD -o fy-net3 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 333333333333" -j ACCEPT
-A FERRY-FORWARD -o fy-net4 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 444444444444" -j ACCEPT
-A FERRY-FORWARD -o fy-net2 -m comment --comment "ferry:routed 222222222222" -j FERRY-ROUTED
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-FORWARD ! -i fy-net1 -o fy-net1 -m comment --comment "ferry:isolate 111111111111" -j DROP
-A FERRY-FORWARD ! -i fy-net2 -o fy-net2 -m comment --comment "ferry:isolate 222222222222" -j DROP
-A FERRY-FORWARD ! -i fy-net3 -o fy-net3 -m comment --comment "ferry:isolate 333333333333" -j DROP
-A FERRY-FORWARD ! -i fy-net4 -o fy-net4 -m comment --comment "ferry:isolate 444444444444" -j DROP
-A FERRY-FORWARD -i fy-net1 -o fy-net1 -m comment --comment "ferry:icc 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net2 -o fy-net2 -m comment --comment "ferry:icc 222222222222" -j DROP
-A FERRY-FORWARD -i fy-net3 -o fy-net3 -m comment --comment "ferry:icc 333333333333" -j ACCEPT
-A FERRY-FORWARD -i fy-net4 -o fy-net4 -m comment --comment "ferry:icc 444444444444" -j ACCEPT
-A FERRY-FORWARD -i fy-net1 ! -o fy-net1 -m comment --comment "ferry:out 111111111111" -j ACCEPT
-A FERRY-FORWARD -i fy-net2 ! -o fy-net2 -m comment --comment "ferry:out 222222222222" -j ACCEPT
-A FERRY-FORWARD -i fy-net3 ! -o fy-net3 -m comment --comment "ferry:out 333333333333" -j ACCEPT
-A FERRY-FORWARD -i fy-net4 ! -o fy-net4 -m comment --comment "ferry:out 444444444444" -j ACCEPT
-A FERRY-INPUT ! -i fyw-+ -p udp -m udp --dport 4799 -m comment --comment "ferry:wireguard only" -j DROP
-I FORWARD 1 -j FERRY-FORWARD
-I INPUT 1 -j FERRY-INPUT
COMMIT

`
