/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`test/nat/links.test.ts > TAP > adding then removing a link: exact -A/-D lines, then the chain goes > batch that adds the first link 1`] = `
*filter
:FERRY-LINKS - [0:0]
:FERRY-FORWARD - [0:0]
-A FERRY-LINKS -s 10.21.0.3/32 -d 10.21.0.2/32 -i fy-net1 -o fy-net1 -p tcp -m tcp --dport 5432 -m comment --comment "ferry:link web-db" -j ACCEPT
-A FERRY-LINKS -s 10.21.0.2/32 -d 10.21.0.3/32 -i fy-net1 -o fy-net1 -p tcp -m tcp --sport 5432 -m comment --comment "ferry:link web-db" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -m comment --comment "ferry:links" -j FERRY-LINKS
-A FERRY-FORWARD -o fy-net1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "ferry:ct 111111111111" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:publish" -j FERRY-PUBLISH
-A FERRY-FORWARD ! -i fy-net1 -o fy-net1 -m comment --comment "ferry:isolate 111111111111" -j DROP
-A FERRY-FORWARD -i fy-net1 -o fy-net1 -m comment --comment "ferry:icc 111111111111" -j DROP
-A FERRY-FORWARD -i fy-net1 ! -o fy-net1 -m comment --comment "ferry:out 111111111111" -j ACCEPT
COMMIT

`

exports[`test/nat/links.test.ts > TAP > golden link rules > icc off: both directions per exposed port, jump after FERRY-USER 1`] = `
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
:FERRY-LINKS - [0:0]
:FERRY-FORWARD - [0:0]
:FERRY-INPUT - [0:0]
-A FERRY-PUBLISH -o fy-net1 -m conntrack --ctstate DNAT -m comment --comment "ferry:publish 111111111111" -j ACCEPT
-A FERRY-LINKS -s 10.21.0.3/32 -d 10.21.0.2/32 -i fy-net1 -o fy-net1 -p sctp -m sctp --dport 9000 -m comment --comment "ferry:link web-database" -j ACCEPT
-A FERRY-LINKS -s 10.21.0.2/32 -d 10.21.0.3/32 -i fy-net1 -o fy-net1 -p sctp -m sctp --sport 9000 -m comment --comment "ferry:link web-database" -j ACCEPT
-A FERRY-LINKS -s 10.21.0.3/32 -d 10.21.0.2/32 -i fy-net1 -o fy-net1 -p tcp -m tcp --dport 5432 -m comment --comment "ferry:link web-database" -j ACCEPT
-A FERRY-LINKS -s 10.21.0.2/32 -d 10.21.0.3/32 -i fy-net1 -o fy-net1 -p tcp -m tcp --sport 5432 -m comment --comment "ferry:link web-database" -j ACCEPT
-A FERRY-LINKS -s 10.21.0.3/32 -d 10.21.0.2/32 -i fy-net1 -o fy-net1 -p udp -m udp --dport 53 -m comment --comment "ferry:link web-database" -j ACCEPT
-A FERRY-LINKS -s 10.21.0.2/32 -d 10.21.0.3/32 -i fy-net1 -o fy-net1 -p udp -m udp --sport 53 -m comment --comment "ferry:link web-database" -j ACCEPT
-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER
-A FERRY-FORWARD -m comment --comment "ferry:links" -j FERRY-LINKS
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

exports[`test/nat/links.test.ts > TAP > golden link rules > two links, sorted by id 1`] = `
-s 10.21.0.4/32 -d 10.21.0.2/32 -i fy-net1 -o fy-net1 -p tcp -m tcp --dport 80 -m comment --comment "ferry:link b" -j ACCEPT
-s 10.21.0.2/32 -d 10.21.0.4/32 -i fy-net1 -o fy-net1 -p tcp -m tcp --sport 80 -m comment --comment "ferry:link b" -j ACCEPT
-s 10.21.0.3/32 -d 10.21.0.2/32 -i fy-net1 -o fy-net1 -p sctp -m sctp --dport 9000 -m comment --comment "ferry:link web-database" -j ACCEPT
-s 10.21.0.2/32 -d 10.21.0.3/32 -i fy-net1 -o fy-net1 -p sctp -m sctp --sport 9000 -m comment --comment "ferry:link web-database" -j ACCEPT
-s 10.21.0.3/32 -d 10.21.0.2/32 -i fy-net1 -o fy-net1 -p tcp -m tcp --dport 5432 -m comment --comment "ferry:link web-database" -j ACCEPT
-s 10.21.0.2/32 -d 10.21.0.3/32 -i fy-net1 -o fy-net1 -p tcp -m tcp --sport 5432 -m comment --comment "ferry:link web-database" -j ACCEPT
-s 10.21.0.3/32 -d 10.21.0.2/32 -i fy-net1 -o fy-net1 -p udp -m udp --dport 53 -m comment --comment "ferry:link web-database" -j ACCEPT
-s 10.21.0.2/32 -d 10.21.0.3/32 -i fy-net1 -o fy-net1 -p udp -m udp --sport 53 -m comment --comment "ferry:link web-database" -j ACCEPT
`
