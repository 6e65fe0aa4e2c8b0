/**
 * What synthetic people are made of (src/services/synthetic.ts, src/storage/repositories/synthetic.ts): name lists with
 * their search keys and email-safe forms, places, and the NI number space the generator draws from. Pure data.
 */
import { normaliseName } from './names.ts';
import { isValidNiNumber } from './ni-number.ts';

// Most common first: names are drawn with a skew towards the start of each list, as real name frequencies are.
// Varied origins, with the apostrophes, hyphens, spaces and accents that name normalisation has to fold.
export const FAMILY_NAMES =
  listOf(`Smith, Jones, Williams, Taylor, Brown, Davies, Evans, Wilson, Thomas, Johnson, Roberts,
  Robinson, Thompson, Wright, Walker, White, Edwards, Hughes, Green, Hall, Lewis, Harris, Clarke, Patel, Jackson, Wood,
  Turner, Martin, Cooper, Hill, Ward, Morris, Moore, Clark, Lee, King, Baker, Harrison, Morgan, Allen, James, Scott,
  Phillips, Watson, Davis, Parker, Price, Bennett, Young, Griffiths, Mitchell, Kelly, Cook, Carter, Richardson, Bailey,
  Collins, Bell, Shaw, Murphy, Miller, Cox, Richards, Khan, Marshall, Anderson, Simpson, Ellis, Adams, Singh, Begum,
  Wilkinson, Foster, Chapman, Powell, Webb, Rogers, Gray, Mason, Ali, Hunt, Hussain, Campbell, Matthews, Owen, Palmer,
  Holmes, Mills, Barnes, Knight, Lloyd, Butler, Russell, Barker, Fisher, Stevens, Jenkins, Murray, Dixon, Harvey, Graham,
  Pearson, Ahmed, Fletcher, Walsh, Kaur, Gibson, Howard, Andrews, Stewart, Elliott, Reynolds, Saunders, Payne, Fox,
  Ford, Pearce, Day, Brooks, West, Lawrence, Cole, Atkinson, Bradley, Spencer, Gill, Dawson, Ball, Burton, O'Brien,
  Watts, Rose, Booth, Perry, Ryan, Grant, Wells, Armstrong, Francis, Rees, Hayes, Hart, Hudson, Newman, Barrett, Webster,
  Hunter, Gregory, Carr, Lowe, Page, Marsh, Riley, Dunn, Woods, Parsons, Berry, Stone, Reid, Holland, Hawkins, Harding,
  Porter, Robertson, Newton, Oliver, Reed, Kennedy, Williamson, Bird, Gardner, Shah, Dean, Lane, Cooke, Bates, Henderson,
  Parry, Burgess, Bishop, Walton, Burns, Nicholson, Shepherd, Ross, Cross, Long, Freeman, Warren, Nicholls, Hamilton,
  Byrne, Sutton, McDonald, Yates, Hodgson, Robson, Curtis, Hopkins, O'Connor, Harper, Coleman, Watkins, Moss, McCarthy,
  Chambers, O'Neill, Griffin, Sharp, Hardy, Wheeler, Potter, Osborne, Johnston, Gordon, Doyle, Wallace, George, Jordan,
  Hutchinson, Rahman, Islam, Iqbal, Mahmood, Akhtar, Chowdhury, Sharma, Gupta, Kumar, Mistry, Joshi, Desai, Choudhury,
  Miah, Uddin, Hossain, Bibi, Nawaz, Qureshi, Malik, Siddiqui, Sandhu, Dhillon, Bains, Chauhan, Mohamed, Abdi, Hassan,
  Farah, Warsame, Okafor, Adeyemi, Okonkwo, Adebayo, Mensah, Owusu, Boateng, Asante, Oyelaran, Nwosu, Eze, Obi,
  Wang, Li, Zhang, Chen, Liu, Wong, Chan, Lam, Cheung, Ng, Nguyễn, Trần, Lê, Phạm, Nowak, Kowalski, Wiśniewski, Wójcik,
  Kowalczyk, Kamiński, Lewandowski, Zieliński, Szymański, Dąbrowski, Silva, Santos, Pereira, Gonçalves, Rodrigues,
  Ferreira, García, Fernández, López, Martínez, González, Rossi, Russo, Esposito, Romano, Papadopoulos, Georgiou,
  Yılmaz, Kaya, Demir, Müller, Schmidt, Schäfer, Dubois, Lefèvre, Popescu, Ionescu, Reyes, Cruz, Bautista, de Souza,
  D'Souza, Fernandes, Van der Berg, Smith-Jones, Lloyd-Williams, MacDonald, MacLeod, McKenzie, Ó Briain, Ní Bhriain,
  Ap Rhys, Øvergaard`);

export const GIVEN_NAMES =
  listOf(`David, Sarah, John, Claire, Michael, Emma, Paul, Helen, Andrew, Laura, Mark, Rachel, James,
  Nicola, Richard, Karen, Stephen, Susan, Peter, Lisa, Christopher, Julie, Daniel, Joanne, Robert, Louise, Thomas,
  Rebecca, Matthew, Michelle, Ian, Amanda, Simon, Jennifer, Jonathan, Elizabeth, Martin, Deborah, Gary, Alison, Steven,
  Samantha, Anthony, Victoria, Kevin, Catherine, Adam, Angela, Lee, Jane, William, Gemma, Neil, Katie, Darren, Hannah,
  Jason, Amy, Philip, Charlotte, Carl, Sophie, Craig, Lucy, Graham, Jessica, Alan, Kelly, Benjamin, Natalie, Joseph,
  Stacey, Ryan, Kirsty, Sean, Tracey, Scott, Donna, Keith, Dawn, Brian, Jacqueline, Timothy, Joanna, Christine, Ashley,
  Olivia, Oliver, Amelia, George, Isla, Harry, Ava, Jack, Mia, Noah, Emily, Leo, Grace, Arthur, Ella, Oscar, Freya,
  Charlie, Poppy, Jacob, Chloë, Zoë, Renée, Joël, Mohammed, Muhammad, Ahmed, Ali, Omar, Yusuf, Hamza, Bilal, Imran,
  Tariq, Kamal, Hassan, Abdi, Ibrahim, Mustafa, Fatima, Aisha, Ayesha, Maryam, Khadija, Zainab, Amina, Iman, Sana,
  Nasreen, Shabana, Parveen, Hodan, Priya, Anjali, Deepak, Rajesh, Sanjay, Amit, Ravi, Arjun, Aarav, Ishaan, Kiran, Diya,
  Anaya, Sunita, Meera, Pooja, Neha, Vikram, Gurpreet, Harpreet, Jaswinder, Manpreet, Sukhdev, Navdeep, Rupinder,
  Olumide, Chinedu, Chiamaka, Ngozi, Nkechi, Adaeze, Oluwaseun, Babajide, Funmilayo, Kwame, Kofi, Ama, Abena, Yaw, Esi,
  Siobhán, Niamh, Aoife, Seán, Ciarán, Pádraig, Róisín, Eoin, Orla, Caoimhe, Dafydd, Rhiannon, Siân, Gwenllian, Iwan,
  Carys, Aled, Eilidh, Mhairi, Ruaridh, Callum, Fraser, Morag, José, María, Inês, João, Luís, Ana, Carlos, Lucía,
  Agnieszka, Katarzyna, Małgorzata, Łukasz, Michał, Wojciech, Piotr, Tomasz, Ewa, Magdalena, Zsófia, Ágnes, Björn,
  Søren, Mei, Ling, Wei, Jun, Xin, Hui, Hiroshi, Yuki, Minh, Anh, Thanh, Linh, Giorgos, Eleni, Dimitris, Mehmet,
  Ayşe, Emre, Elif, Andrei, Ioana, Mihai, Jean-Luc, Anne-Marie, Mary-Jane, Marie-Claire, Jean-Paul, Rosalind, Margaret,
  Patricia, Barbara, Linda, Maureen, Pauline, Sandra, Janet, Kathleen, Valerie, Eileen, Brenda, Denise, Carol, Colin,
  Roger, Derek, Trevor, Nigel, Malcolm, Clive, Barry, Terence, Raymond, Dennis, Geoffrey, Keisha, Shanice, Tyrone,
  Marcus, Jermaine, Leon, Aaliyah, Kemi, Tobi, Femi, Dayo`);

/** Place names for organisation names; a list, not real organisations. */
export const PLACES = listOf(`Ashford, Barnsley, Bedford, Blackburn, Bolton, Bradford, Brighton, Bristol, Burnley, Bury,
  Cambridge, Carlisle, Chelmsford, Chester, Colchester, Coventry, Crawley, Darlington, Derby, Doncaster, Dudley,
  Durham, Exeter, Gateshead, Gloucester, Grimsby, Halifax, Harrogate, Hastings, Hereford, Huddersfield, Hull, Ipswich,
  Kendal, Kettering, Lancaster, Leeds, Leicester, Lincoln, Liverpool, Luton, Maidstone, Manchester, Middlesbrough,
  Milton Keynes, Newcastle, Northampton, Norwich, Nottingham, Oldham, Oxford, Peterborough, Plymouth, Poole,
  Portsmouth, Preston, Reading, Rochdale, Rotherham, Salford, Salisbury, Scunthorpe, Sheffield, Shrewsbury, Slough,
  Southampton, Southend, Stafford, Stockport, Stoke, Sunderland, Swindon, Taunton, Telford, Torbay, Truro, Wakefield,
  Walsall, Warrington, Watford, Wigan, Winchester, Wolverhampton, Worcester, Worthing, Yeovil, York`);

function listOf(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** A name list with its search keys (the same normalisation registerPerson stores) and an email-safe form. */
export interface NameColumns {
  names: string[];
  keys: string[];
  emailParts: string[];
}

export function nameColumns(names: readonly string[]): NameColumns {
  const keys = names.map(normaliseName);
  return {
    names: [...names],
    keys,
    emailParts: keys.map((k) => asciiEmailPart(k)),
  };
}

/** Letters that survive accent folding (ł, ø…) spelt as people spell them in an email address. */
const TRANSLITERATION: Record<string, string> = { ł: 'l', ø: 'o', æ: 'ae', đ: 'd', ð: 'd', þ: 'th', ß: 'ss' };

function asciiEmailPart(key: string): string {
  const lower = key.toLowerCase().replace(/[łøæđðþß]/g, (c) => TRANSLITERATION[c] ?? '');
  return lower.replace(/[^a-z0-9]/g, '') || 'x';
}

/**
 * Every NI prefix HMRC allocates (ni-number.ts rules), never the example QQ. Concatenated into one string: SQL picks
 * prefix i with substr(…, 2i + 1, 2).
 */
function niPrefixes(): string {
  const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  const out: string[] = [];
  for (const a of letters) for (const b of letters) if (isValidNiNumber(`${a}${b}000000A`)) out.push(`${a}${b}`);
  return out.join('');
}

export const NI_PREFIXES = niPrefixes();
/** NI numbers: every allocated prefix × 10^6 digit strings × 4 suffixes (373 × 4 000 000). */
export const NI_SPACE = (NI_PREFIXES.length / 2) * 4_000_000;
/**
 * A prime (the 50 millionth) larger than any prime factor of NI_SPACE, so coprime with it: seq ↦ (seq mod NI_SPACE) ·
 * NI_SCRAMBLE mod NI_SPACE is a bijection, and the never-repeating sequence values give distinct NI numbers, scattered
 * rather than consecutive. (seq mod NI_SPACE) · NI_SCRAMBLE < 1.5e18 stays inside bigint.
 */
export const NI_SCRAMBLE = 982_451_653;
