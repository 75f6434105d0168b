import json, glob, statistics as st
d='/work/main/docs/data/amd-epyc-f26m2/bound_steps'
def j(b,a,h,r):
    try: return json.load(open(f'{d}/{b}-{a}-{h}-{r}.json'))
    except Exception: return None
print('| arch, H | run() before / now | step() before / now | separate kernels, run(), before / now (control) |')
print('| --- | ---: | ---: | ---: |')
for a in ['lstm','gru']:
  for h in ['64','128','256','512','1024','1024b8']:
    R=[];S=[];C=[]
    for r in range(1,17):
      B,N=j('base',a,h,r),j('new',a,h,r)
      if not B or not N: continue
      R.append(B['amq_us_per_step']/N['amq_us_per_step']); S.append(B['amq_step_us_per_step']/N['amq_step_us_per_step'])
      if B.get('amq_separate_us_per_step') and N.get('amq_separate_us_per_step'): C.append(B['amq_separate_us_per_step']/N['amq_separate_us_per_step'])
    q=lambda v: '%.2f (%.2f-%.2f)'%(st.median(v), sorted(v)[len(v)//4], sorted(v)[3*len(v)//4]) if v else '-'
    print(f"| {a.upper()} {h.replace('b8',', batch 8')} | {q(R)} | {q(S)} | {q(C)} |")
