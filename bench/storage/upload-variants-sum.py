import sys, json, collections
d=collections.defaultdict(lambda: collections.defaultdict(list))
order=[]
for l in open(sys.argv[1]):
    if not l.strip() or not l.split(' ',1)[1].startswith('{'): continue
    lab, js = l.split(' ',1); j=json.loads(js)
    if lab not in order: order.append(lab)
    for k in ('wall','cpu','wios','avgReqKiB'): d[lab][k].append(j[k])
def p50(a): a=sorted(a); return a[(len(a)-1)//2]
for lab in order:
    x=d[lab]; print(f"{lab:10s} wall p50 {p50(x['wall']):6d} all {sorted(x['wall'])}  cpu p50 {p50(x['cpu']):5d}  reqKiB {p50(x['avgReqKiB'])}")
